"""What a catalog entry's values may hold: params as JSON that Postgres stores and every reader
agrees on, and token prices as exact decimals."""

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from libs.catalog.numbers import JSON_EXACT
from libs.security.params import credential_problem

TOKEN_PRICE_MAX = 10**9
"""The most credits 1,000 tokens may cost: with at most ``INT32_MAX`` output tokens a request
stays within ``CREDITS_MAX``, its base price aside."""


def _number_not_text(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise PydanticCustomError("decimal_type", "Input should be a valid number")
    return value


TokenPrice = Annotated[
    Decimal,
    Field(ge=0, le=TOKEN_PRICE_MAX, decimal_places=6),
    BeforeValidator(_number_not_text),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": TOKEN_PRICE_MAX}),
]
"""Credits per 1,000 tokens: a JSON number from 0 to ``TOKEN_PRICE_MAX`` with at most six
decimals (never ``true`` nor ``"0.5"``); exact, as a ``Decimal``."""


def json_number(value: Decimal) -> int | float:
    """A decimal as a JSON number: an integer when it is one. Six decimals below 10**9 are at most
    15 significant digits, which a float holds exactly."""
    return int(value) if value == value.to_integral_value() else float(value)


def storable(value: Any, where: str) -> None:
    """Refuse what Postgres cannot store as text or jsonb: NUL characters, lone surrogates, and
    numbers beyond 64 bits (no JSON encoder here writes such an integer; NaN and infinities are
    no JSON)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where} holds a number beyond 64 bits")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} is not valid Unicode text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, where)
            storable(item, where)
    elif isinstance(value, list | tuple):
        for item in value:
            storable(item, where)


NO_NUL = "^[^\\u0000]*$"
"""Text Postgres can store, as a JSON Schema pattern (no pattern can name a lone surrogate, which
is refused too)."""


def _storable_names(schema: dict[str, Any]) -> None:
    schema.pop("patternProperties", None)
    schema["propertyNames"] = {"pattern": NO_NUL}


_JsonText = Annotated[str, Field(json_schema_extra={"pattern": NO_NUL})]
_JsonInt = Annotated[int, Field(ge=-JSON_EXACT, le=JSON_EXACT)]
_JsonNumber = Annotated[float, Field(ge=-JSON_EXACT, le=JSON_EXACT)]
JsonValue = TypeAliasType(
    "JsonValue",
    "_JsonText | _JsonInt | _JsonNumber | bool | None | list[JsonValue]"
    " | Annotated[dict[str, JsonValue], Field(json_schema_extra=_storable_names)]",
)
"""What ``params`` may hold, as its JSON Schema says it: JSON that Postgres can store as jsonb,
its numbers within ``JSON_EXACT`` (so that every reader, and the schema's bounds, agree on
them)."""


def _json_numbers(value: Any, where: str) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not -JSON_EXACT <= value <= JSON_EXACT:
            raise ValueError(f"{where} holds a number beyond 2**53 (its sign aside)")
    elif isinstance(value, dict):
        for item in value.values():
            _json_numbers(item, where)
    elif isinstance(value, list):
        for item in value:
            _json_numbers(item, where)


def _params(value: Any) -> dict[str, Any]:
    """One clear error, where checking ``JsonValue`` member by member would list one per member;
    the rest (NUL, lone surrogates) is ``storable``'s."""
    if not isinstance(value, dict):
        raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
    _json_numbers(value, "params")
    problem = credential_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Params = Annotated[
    dict[str, Any],
    PlainValidator(
        _params,
        json_schema_input_type=Annotated[
            dict[str, JsonValue], Field(json_schema_extra=_storable_names)
        ],
    ),
]
"""A handler's or offer's params: JSON (``JsonValue``), no credential, no environment
variable's name (see ``libs.security.params``); their URLs are checked, against the SSRF guard,
when written."""

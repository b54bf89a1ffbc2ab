"""Text every request body field must be: what Postgres can store. NUL characters and unpaired
surrogates (which valid JSON can spell as ``\\u0000`` and ``\\ud800``) are refused with a 422
naming the field, before anything is written or a message tries to echo them."""

from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from libs.accounts import NAME_MAX, name_problem
from libs.db.text import storable

STORABLE_PATTERN = "^[^\\u0000]*$"
"""Storable text as a JSON Schema pattern: no NUL. (An unpaired surrogate, which no pattern can
name, is refused too.)"""
_CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
_SPACE = "\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
USER_NAME_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
"""A user name as a JSON Schema pattern: no control character, and not only spaces."""


def _user_name(value: Any) -> Any:
    if isinstance(value, str) and (problem := name_problem(value)) is not None:
        raise PydanticCustomError("invalid_user_name", problem)
    return value


StorableText = Annotated[
    str, BeforeValidator(storable), Field(json_schema_extra={"pattern": STORABLE_PATTERN})
]
"""A request body's string: the type of every ``str`` field of a request model."""

UserName = Annotated[
    str,
    BeforeValidator(_user_name),
    Field(json_schema_extra={"pattern": USER_NAME_PATTERN, "maxLength": NAME_MAX}),
]
"""A user name: storable text without control characters (``libs.accounts.name_problem``)."""


def printable(text: str) -> str:
    """``text`` safe to put in a JSON response: unpaired surrogates and NUL escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")

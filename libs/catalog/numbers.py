"""Numbers as the catalog's JSON has them: integers JSON Schema calls integers, within what
every reader and Postgres hold."""

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1
JSON_EXACT = 2**53
"""The integers a JSON number holds exactly, whatever reads it."""
CREDITS_MAX = JSON_EXACT
"""Prices and credits stay well inside Postgres' bigint (and a JSON number's exact range)."""


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""An integer as JSON Schema has it: ``3`` or ``3.0``, never ``true`` nor ``"3"`` (which pydantic
would read as 1 and 3). Constraints go before it in an ``Annotated``, or the JSON Schema of an
optional one loses them."""
JsonInt = Annotated[int, JSON_INTEGER]

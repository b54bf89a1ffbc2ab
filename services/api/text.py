"""Text every request body field must be: what Postgres can store. NUL characters and unpaired
surrogates (which valid JSON can spell as ``\\u0000`` and ``\\ud800``) are refused with a 422
naming the field, before anything is written or a message tries to echo them."""

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from libs.accounts import name_problem


def text_problem(value: str) -> str | None:
    """Why Postgres cannot store ``value`` as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain unpaired surrogates"
    return None


def _storable(value: Any) -> Any:
    # Before pydantic's own str checks: a length or pattern constraint would refuse a
    # surrogate with a message that does not say why.
    if isinstance(value, str) and (problem := text_problem(value)) is not None:
        raise PydanticCustomError("unstorable_text", problem)
    return value


def _user_name(value: Any) -> Any:
    if isinstance(value, str) and (problem := name_problem(value)) is not None:
        raise PydanticCustomError("invalid_user_name", problem)
    return value


StorableText = Annotated[str, BeforeValidator(_storable)]
"""A request body's string: the type of every ``str`` field of a request model."""

UserName = Annotated[str, BeforeValidator(_user_name)]
"""A user name: storable text without control characters (``libs.accounts.name_problem``)."""


def printable(text: str) -> str:
    """``text`` safe to put in a JSON response: unpaired surrogates and NUL escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")

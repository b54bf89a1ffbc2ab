"""What Postgres can store as text: no NUL character, no unpaired surrogate."""

from typing import Any

from pydantic_core import PydanticCustomError


def text_problem(value: str) -> str | None:
    """Why Postgres cannot store ``value`` as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain unpaired surrogates"
    return None


def storable(value: Any) -> Any:
    """A pydantic ``BeforeValidator``: a string Postgres cannot store is refused, before
    pydantic's own str checks (a length or pattern constraint would refuse a surrogate with a
    message that does not say why)."""
    if isinstance(value, str) and (problem := text_problem(value)) is not None:
        raise PydanticCustomError("unstorable_text", problem)
    return value

"""What a user name may hold: any text without control characters, that Postgres can store."""

from libs.accounts.errors import InvalidUserNameError

NAME_MAX = 200


def _is_control(char: str) -> bool:
    """C0 controls (NUL, tab, newline, escape...), DEL and the C1 controls (U+0080-U+009F): none
    of them prints, and several move a terminal's cursor or start an escape sequence."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a user name, or None when it can."""
    if not name.strip():
        return "must not be empty"
    if len(name) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if "\x00" in name:
        return "must not contain NUL characters"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "must not contain unpaired surrogates"
    control = next((c for c in name if _is_control(c)), None)
    if control is not None:
        return f"must not contain control characters (found U+{ord(control):04X})"
    return None


def check_user_name(name: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise InvalidUserNameError(f"a user name {problem}")

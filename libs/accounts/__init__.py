"""Users and their API keys, as the CLI and admin tools create them."""

from libs.accounts.keys import (
    KeyInfo,
    UnknownKeyError,
    UnknownUserError,
    issue_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from libs.accounts.users import NewUser, UserExistsError, add_api_key, create_user

__all__ = [
    "KeyInfo",
    "NewUser",
    "UnknownKeyError",
    "UnknownUserError",
    "UserExistsError",
    "add_api_key",
    "create_user",
    "issue_key",
    "list_keys",
    "revoke_key",
    "rotate_key",
]

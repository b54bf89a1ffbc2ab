"""Users and their API keys, as the CLI and admin tools create them."""

from libs.accounts.errors import (
    BalanceOverflowError,
    IdentityExistsError,
    InvalidUserNameError,
    UnknownKeyError,
    UnknownUserError,
    UserExistsError,
)
from libs.accounts.identities import find_identity, link_identity, provision_identity
from libs.accounts.keys import (
    KeyInfo,
    admin_holding,
    issue_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from libs.accounts.names import NAME_MAX, check_user_name, name_problem
from libs.accounts.users import NewUser, add_api_key, create_user, grant_credits
from libs.accounts.weights import WEIGHT_MAX, mirror_weight, mirror_weights, set_weight, weights

__all__ = [
    "NAME_MAX",
    "WEIGHT_MAX",
    "mirror_weight",
    "mirror_weights",
    "set_weight",
    "weights",
    "BalanceOverflowError",
    "IdentityExistsError",
    "InvalidUserNameError",
    "check_user_name",
    "name_problem",
    "find_identity",
    "link_identity",
    "provision_identity",
    "KeyInfo",
    "admin_holding",
    "NewUser",
    "UnknownKeyError",
    "UnknownUserError",
    "UserExistsError",
    "add_api_key",
    "create_user",
    "grant_credits",
    "issue_key",
    "list_keys",
    "revoke_key",
    "rotate_key",
]

"""Users and their API keys, as the CLI and admin tools create them."""

from libs.accounts.users import NewUser, UserExistsError, create_user

__all__ = ["NewUser", "UserExistsError", "create_user"]

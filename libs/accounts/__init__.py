"""Users and their API keys, as the CLI and admin tools create them."""

from libs.accounts.users import NewUser, UserExistsError, add_api_key, create_user

__all__ = ["NewUser", "UserExistsError", "add_api_key", "create_user"]

"""API keys: generation and the one-way hash stored in place of the key."""

from libs.security.keys import KEY_PREFIX, generate_api_key, hash_api_key

__all__ = ["KEY_PREFIX", "generate_api_key", "hash_api_key"]

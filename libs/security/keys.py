import hashlib
import secrets

KEY_PREFIX = "rk_"


def generate_api_key() -> str:
    """A new key: 256 random bits, URL-safe, recognisable by its prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    """SHA-256 of the key. Keys carry 256 random bits, so a fast hash is enough: there is
    nothing to guess, and every authenticated call pays for it."""
    return hashlib.sha256(key.encode()).digest()

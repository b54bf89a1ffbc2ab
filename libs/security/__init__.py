"""API keys (generation and the one-way hash stored in place of the key), masking of secrets,
and the SSRF guard (``libs.security.ssrf``)."""

from libs.security.keys import KEY_PREFIX, generate_api_key, hash_api_key
from libs.security.masking import mask_event, mask_secrets, mask_text

__all__ = [
    "KEY_PREFIX",
    "generate_api_key",
    "hash_api_key",
    "mask_event",
    "mask_secrets",
    "mask_text",
]

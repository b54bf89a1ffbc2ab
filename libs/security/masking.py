"""Secrets out of sight: masks the values of sensitive keys and credential-looking text, for
logs (``libs.logs`` runs every line through :func:`mask_event`) and for anything shown back to
an admin (handler and offer params)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_SENSITIVE = re.compile(
    r"(api[-_]?key|apikey|authorization|auth|token|secret|password|passwd|pwd|credential"
    r"|private[-_]?key|access[-_]?key|cookie|session|ticket|signature)",
    re.IGNORECASE,
)
_NOT_SENSITIVE = frozenset({"max_tokens", "tokens", "token_count", "input_tokens", "output_tokens"})

_PATTERNS = (
    # Authorization headers and the like: keep the scheme, hide the credential.
    (re.compile(r"\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{4,}", re.IGNORECASE), r"\1 " + MASK),
    # Credentials sent as WebSocket subprotocols: "bearer, <token>", "ticket, <ticket>".
    (re.compile(r"\b(bearer|ticket)\s*,\s*[^\s\"',]+", re.IGNORECASE), r"\1, " + MASK),
    # Relai API keys and WebSocket tickets, provider keys (sk-..., sk_live_...), JWTs.
    (re.compile(r"\brk_[A-Za-z0-9_-]{6,}"), "rk_" + MASK),
    (re.compile(r"\bwst_[A-Za-z0-9_-]{6,}"), "wst_" + MASK),
    (re.compile(r"\bsk[-_][A-Za-z0-9_-]{8,}"), "sk-" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), MASK),
    # Credentials in URLs and query strings.
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1" + MASK + "@"),
    (
        re.compile(r"([?&](?:api_key|apikey|key|token|access_token|ticket|secret)=)[^&\s\"']+"),
        r"\1" + MASK,
    ),
)


def is_sensitive_key(key: str) -> bool:
    return key.lower() not in _NOT_SENSITIVE and _SENSITIVE.search(key) is not None


def mask_text(text: str) -> str:
    """``text`` with bearer credentials, API keys, JWTs and URL credentials masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with the values of sensitive keys replaced by
    ``***`` and credential-looking text masked."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_sensitive_key(k) and v else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def mask_event(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets in every field of the line."""
    masked = mask_secrets(event_dict)
    assert isinstance(masked, dict)
    return masked

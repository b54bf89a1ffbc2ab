"""Signatures as the Standard Webhooks specification has them (https://www.standardwebhooks.com):
the secret is ``whsec_`` and the base64 of random bytes; a message is signed with HMAC-SHA256
over ``{webhook-id}.{webhook-timestamp}.{body}`` keyed by those bytes, and sent as ``v1,`` and
the base64 of the digest. While a secret is being rotated, both sign: the header holds one
signature per secret, separated by spaces, and a receiver that knows either accepts it.

The receivers' own libraries (``standardwebhooks``, the ``openai`` SDK's ``webhooks.unwrap``)
verify what this signs; the tests hold it to both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from libs.contracts.webhooks import SECRET_PREFIX

SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,`` signature of ``body`` sent as ``msg_id`` at ``timestamp`` (Unix seconds)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(
    secrets_: Sequence[str], *, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers of a delivery, signed by every secret in ``secrets_``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(s, msg_id=msg_id, timestamp=timestamp, body=body) for s in secrets_
        ),
    }

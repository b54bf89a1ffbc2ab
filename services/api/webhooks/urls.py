"""What a webhook URL must be, wherever it is written (an endpoint, a request's one-off URL):
http or https, at most ``URL_MAX`` characters, and a host the SSRF guard lets through
(``libs.security.ssrf``, with ``RELAI_SSRF_ALLOW``). The dispatcher checks the address again when
it connects."""

from __future__ import annotations

from libs.security.ssrf import UnsafeUrlError, UrlPolicy, check_url
from services.api.errors import InvalidInputs

WEBHOOK_URL_HEADER = "Relai-Webhook-Url"
"""The header naming a request's one-off URL at submit, on every door."""
URL_MAX = 2048
URL_PATTERN = "^https?://[^\\u0000-\\u0020\\\\]*$"
"""The URL as a JSON Schema pattern: a lower-case scheme, and no spaces, control characters or
backslashes (which the guard refuses)."""


async def check_webhook_url(url: str, policy: UrlPolicy, *, field: str) -> None:
    """Refuse (422, naming ``field`` and the reason) a URL that may not receive webhooks."""
    if len(url) > URL_MAX:
        raise InvalidInputs(
            f"{field}: the URL is longer than {URL_MAX} characters", fields=[field], limit=URL_MAX
        )
    if not url.startswith(("http://", "https://")):
        raise InvalidInputs(f"{field}: only http and https URLs are allowed", fields=[field])
    try:
        await check_url(url, policy)
    except UnsafeUrlError as exc:
        raise InvalidInputs(f"{field}: {exc}", fields=[field]) from None

"""Completion webhooks, the parts the API and the dispatcher share: signing secrets and
signatures (the Standard Webhooks scheme) and the retry schedule."""

from libs.webhooks.schedule import RetryPolicy, retry_after_seconds
from libs.webhooks.signing import new_secret, sign_headers, signature

__all__ = ["RetryPolicy", "new_secret", "retry_after_seconds", "sign_headers", "signature"]

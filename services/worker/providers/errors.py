"""How a provider call fails: transient errors are retried, permanent ones fail the job at once."""

from services.worker.job import HandlerError


class ProviderError(HandlerError):
    """A failed provider call. The message never holds the API key: it is masked here."""

    def __init__(self, message: str, *, secret: str | None = None) -> None:
        super().__init__(message.replace(secret, "***") if secret else message)


class TransientError(ProviderError):
    """Worth retrying: a timeout, a connection error, 408/409/425/429 or a 5xx."""

    def __init__(
        self, message: str, *, secret: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, secret=secret)
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (``Retry-After``), if it said."""


class PermanentError(ProviderError):
    """Retrying cannot help: another 4xx, a malformed answer, invalid params."""

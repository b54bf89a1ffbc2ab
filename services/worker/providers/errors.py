"""How a provider call fails: transient errors are retried, permanent ones fail the job at once."""

from services.worker.job import HandlerError


class ProviderError(HandlerError):
    """A failed provider call. The message never holds the API key: it is masked here."""

    def __init__(self, message: str, *, secret: str | None = None) -> None:
        super().__init__(message.replace(secret, "***") if secret else message)


class TransientError(ProviderError):
    """Worth retrying: a timeout, a connection error, 408/409/425/429 or a 5xx."""

    def __init__(
        self,
        message: str,
        *,
        secret: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        maybe_running: bool = False,
    ) -> None:
        super().__init__(message, secret=secret)
        self.retry_after = retry_after
        """Seconds the provider asked us to wait (``Retry-After``), if it said."""
        self.status = status
        """The provider's HTTP status, when it answered with one."""
        self.maybe_running = maybe_running
        """The request was sent and no answer came in time (a read or write timeout): the
        provider may still be running it, and billing it. Not so for a connection refused or
        dropped, or an error status: sending it again cannot run it twice."""


class PermanentError(ProviderError):
    """Retrying cannot help: another 4xx, a malformed answer, invalid params."""


class BrokenStreamError(PermanentError):
    """A stream that broke after partial output: not retried (subscribers saw part of it), yet
    the provider's failure (its ``__cause__``), not the request's."""

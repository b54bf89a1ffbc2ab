"""Retries of one provider call: transient errors again after exponential backoff with full
jitter (or the provider's ``Retry-After``, capped), up to ``max_retries``; the job timeout bounds
the whole."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from libs.logs import get_logger
from services.worker.metrics import RETRIES
from services.worker.providers.errors import TransientError
from services.worker.providers.params import ProviderParams

log = get_logger(__name__)

T = TypeVar("T")


class _Wait:
    def __init__(self, params: ProviderParams) -> None:
        self._backoff = wait_random_exponential(
            multiplier=params.backoff_s, max=params.backoff_max_s
        )
        self._retry_after_max_s = params.retry_after_max_s

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        if retry_after is not None:
            return min(retry_after, self._retry_after_max_s)
        return float(self._backoff(state))


async def with_retries(handler: str, params: ProviderParams, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``, again on ``TransientError``; the last error names the attempts made."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        RETRIES.labels(handler).inc()
        log.info(
            "provider.retry",
            handler=handler,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            error=str(exc),
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(params.max_retries + 1),
        wait=_Wait(params),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return await retrying(call)
    except TransientError as exc:
        attempts = retrying.statistics.get("attempt_number", 1)
        if attempts > 1:
            raise TransientError(
                f"{exc} (gave up after {attempts} attempts)",
                retry_after=exc.retry_after,
                status=exc.status,
                maybe_running=exc.maybe_running,
            ) from exc
        raise

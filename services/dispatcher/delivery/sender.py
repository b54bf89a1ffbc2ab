"""One attempt of a delivery over HTTP: the stored payload, byte for byte, signed as the Standard
Webhooks specification has it, through the SSRF guard (checked at connect time, after
resolution; redirects refused), within a deadline for the whole exchange."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus

import httpx

from libs.contracts.webhooks import webhook_id
from libs.security.ssrf import BlockedConnection, GuardedTransport, RedirectRefused, UrlPolicy
from libs.webhooks import retry_after_seconds, sign_headers
from services.dispatcher.delivery.schemas import Attempt, Claimed

ERROR_LIMIT = 500
"""Longest error text kept with an attempt."""


def webhook_client(ssrf_allow: Iterable[str], *, max_connections: int) -> httpx.AsyncClient:
    """The client every delivery leaves through: the SSRF guard of provider calls (a receiver
    at a private, loopback or metadata address is refused unless ``RELAI_SSRF_ALLOW`` lists
    it), no redirects followed, no cookies kept between receivers."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport = GuardedTransport(UrlPolicy.from_allow(ssrf_allow), limits=limits)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


class Sender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout_s: float,
        user_agent: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._user_agent = user_agent
        self._clock = clock

    def headers(self, delivery: Claimed) -> dict[str, str]:
        """The headers of this attempt: a fresh timestamp, the delivery's one id."""
        signed = sign_headers(
            delivery.secrets,
            msg_id=webhook_id(delivery.id),
            timestamp=int(self._clock()),
            body=delivery.payload.encode(),
        )
        return {
            **signed,
            "content-type": "application/json",
            "user-agent": self._user_agent,
        }

    async def send(self, delivery: Claimed) -> Attempt:
        """Make the attempt; any failure is described in the result, never raised."""
        started = time.perf_counter()
        if not delivery.secrets:
            return Attempt(latency_s=0.0, error="no signing secret for this delivery's owner")
        try:
            # The body of the answer is never read: only its status and Retry-After count.
            async with (
                asyncio.timeout(self._timeout_s),
                self._client.stream(
                    "POST",
                    delivery.url,
                    content=delivery.payload.encode(),
                    headers=self.headers(delivery),
                    timeout=self._timeout_s,
                ) as response,
            ):
                code, retry_after = response.status_code, response.headers.get("retry-after")
        except TimeoutError:
            return self._failed(started, f"no answer within {self._timeout_s:g}s")
        except httpx.TimeoutException as exc:
            return self._failed(started, f"no answer within {self._timeout_s:g}s ({_kind(exc)})")
        except RedirectRefused as exc:
            return self._failed(started, str(exc))
        except httpx.HTTPError as exc:
            return self._failed(started, describe(exc))
        latency = time.perf_counter() - started
        if 200 <= code < 300:
            return Attempt(latency_s=latency, status_code=code)
        return Attempt(
            latency_s=latency,
            status_code=code,
            error=f"HTTP {code} {_phrase(code)}".rstrip(),
            retry_after_s=retry_after_seconds(retry_after),
        )

    @staticmethod
    def _failed(started: float, error: str) -> Attempt:
        return Attempt(latency_s=time.perf_counter() - started, error=error[:ERROR_LIMIT])


def describe(exc: httpx.HTTPError) -> str:
    """What went wrong, in words an endpoint's owner can act on."""
    blocked = _cause(exc, BlockedConnection)
    if blocked is not None:
        return f"blocked by the SSRF guard, not connected: {blocked}"
    text = str(exc) or type(exc).__name__
    return f"{_kind(exc)}: {text}"


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""

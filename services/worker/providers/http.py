"""The one place provider HTTP clients are made, and how a provider call reads and fails.

Every provider handler sends its requests through the client of one ``ProviderHttp``: redirects
are never followed, every request has connect, read, write and pool timeouts, and an optional
``url_guard`` sees each request before it leaves (to refuse private addresses, say).
"""

import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from httpx_sse import EventSource, ServerSentEvent, SSEError

from libs.security.params import url_values
from libs.security.ssrf import (
    GuardedTransport,
    UnsafeUrlError,
    UrlPolicy,
    check_url,
    check_url_syntax,
)
from services.worker.providers.errors import PermanentError, ProviderError, TransientError

UrlGuard = Callable[[httpx.URL], Awaitable[None]]
"""Raises (any exception) to refuse a request to that URL; the job then fails at once."""

DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})
_SNIPPET = 300


class UrlRefusedError(PermanentError):
    pass


def _ssrf_guard(policy: UrlPolicy) -> UrlGuard:
    async def guard(url: httpx.URL) -> None:
        await check_url(str(url), policy)

    return guard


class ProviderHttp:
    """The worker's HTTP client for providers: made on first use, inside the running loop, and
    closed by whoever made this object (the worker, at shutdown)."""

    def __init__(
        self,
        *,
        url_guard: UrlGuard | None = None,
        policy: UrlPolicy | None = None,
        max_connections: int = 1000,
    ) -> None:
        """With ``policy``, the SSRF guard (``libs.security.ssrf``) refuses every URL whose
        host is or resolves to an address it does not allow, before the request leaves, and
        again at connect time (a name that resolves elsewhere by then is refused too)."""
        self._policy = policy
        self._url_guard = url_guard or (_ssrf_guard(policy) if policy is not None else None)
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(100, max_connections)
        )
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            transport = (
                GuardedTransport(self._policy, limits=self._limits)
                if self._policy is not None
                else None
            )
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                timeout=DEFAULT_TIMEOUT,
                limits=self._limits,
                transport=transport,
                event_hooks={"request": [self._check_url]},
            )
        return self._client

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Refuse (``UrlRefusedError``) a job whose params hold, at any depth, a URL the policy
        refuses by its text alone (scheme, credentials, a literal private address): checked
        when the catalog was written, and again here since a task may predate the check. The
        URLs called are checked again, resolved, as each request leaves."""
        if self._policy is None:
            return
        for path, value in url_values(params):
            if not isinstance(value, str):
                raise UrlRefusedError(f"invalid params: {path} must be a URL string")
            try:
                check_url_syntax(value, self._policy)
            except UnsafeUrlError as exc:
                raise UrlRefusedError(f"invalid params: {path}: {exc}") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _check_url(self, request: httpx.Request) -> None:
        if self._url_guard is None:
            return
        try:
            await self._url_guard(request.url)
        except Exception as exc:
            raise UrlRefusedError(f"request to {request.url.host} refused: {exc}") from exc


async def post_json(
    http: ProviderHttp,
    url: str,
    body: Any,
    *,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    secret: str | None = None,
) -> Any:
    """POST ``body`` as JSON and return the decoded JSON answer, or raise a ``ProviderError``."""
    response = await send(
        http, "POST", url, headers=headers, timeout=timeout, secret=secret, json=body
    )
    return json_of(response, secret)


Upload = tuple[str, tuple[str, bytes, str]]
"""A multipart file field: ``(field, (filename, bytes, media type))``."""


async def send(
    http: ProviderHttp,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    secret: str | None = None,
    json: Any = None,
    data: Mapping[str, str] | None = None,
    files: list[Upload] | None = None,
) -> httpx.Response:
    """Send a request (a JSON body, or multipart ``data`` fields and ``files``) and return its
    answer, read whole, when its status is a success; else raise a ``ProviderError``."""
    try:
        response = await http.client().request(
            method, url, json=json, data=data, files=files, headers=headers, timeout=timeout
        )
        await response.aread()
    except httpx.HTTPError as exc:
        raise _transport_error(exc, secret) from exc
    _check_status(response, secret)
    return response


def json_of(response: httpx.Response, secret: str | None = None) -> Any:
    """The answer's JSON, or a ``PermanentError`` quoting the start of what it was."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(
            f"malformed JSON from the provider ({exc}): {_snippet(response.text, secret)}",
            secret=secret,
        ) from exc


def media_type_of(response: httpx.Response) -> str:
    """The answer's ``Content-Type`` without its parameters, lower-case ("" if none)."""
    return str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()


@asynccontextmanager
async def post_sse(
    http: ProviderHttp,
    url: str,
    body: Any,
    *,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    secret: str | None = None,
) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
    """POST ``body`` and yield its server-sent events; errors become ``ProviderError``."""
    request_headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-store"}
    try:
        async with http.client().stream(
            "POST", url, json=body, headers=request_headers, timeout=timeout
        ) as response:
            if not response.is_success:
                await response.aread()
                _check_status(response, secret)
            yield _events(EventSource(response), secret)
    except httpx.HTTPError as exc:
        raise _transport_error(exc, secret) from exc


async def _events(source: EventSource, secret: str | None) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in source.aiter_sse():
            yield event
    except SSEError as exc:
        raise PermanentError(f"not an event stream: {exc}", secret=secret) from exc


def sse_json(event: ServerSentEvent, secret: str | None = None) -> Any:
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(
            f"malformed JSON in the event stream ({exc}): {_snippet(event.data, secret)}",
            secret=secret,
        ) from exc


def _transport_error(exc: httpx.HTTPError, secret: str | None) -> ProviderError:
    if isinstance(exc, httpx.TimeoutException):
        # A connect or pool timeout sent nothing; a read or write timeout may have sent it all.
        sent = isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout)
        return TransientError(
            f"provider timed out ({type(exc).__name__})", secret=secret, maybe_running=sent
        )
    if isinstance(exc, httpx.TransportError):
        return TransientError(
            f"cannot reach the provider ({type(exc).__name__}: {exc})", secret=secret
        )
    return PermanentError(f"{type(exc).__name__}: {exc}", secret=secret)


def _check_status(response: httpx.Response, secret: str | None) -> None:
    status = response.status_code
    if response.is_success:
        return
    detail = f"provider answered {status}: {_snippet(response.text, secret)}"
    if response.is_redirect:
        location = response.headers.get("location", "")
        raise PermanentError(f"provider redirected ({status}) to {location!r}; not followed")
    if status in _TRANSIENT_STATUS or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise TransientError(detail, secret=secret, retry_after=retry_after, status=status)
    raise PermanentError(detail, secret=secret)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _snippet(text: str, secret: str | None) -> str:
    text = " ".join(text.split())
    if secret:
        text = text.replace(secret, "***")
    return text[:_SNIPPET] + ("..." if len(text) > _SNIPPET else "")

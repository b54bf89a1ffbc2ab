"""Anthropic messages: ``POST {base_url}/v1/messages`` (``stream: true`` for server-sent events),
key in ``x-api-key``. The API has no ``n``: ``create_qty`` makes repeated calls."""

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from services.worker.job import Job
from services.worker.providers.base import (
    Emit,
    ProviderHandler,
    Reply,
    counts,
    objects,
    streams,
    turns,
)
from services.worker.providers.errors import PermanentError, TransientError
from services.worker.providers.http import post_json, post_sse, sse_json
from services.worker.providers.params import ProviderParams

_USAGE = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_creation_input_tokens": "cache_creation_input_tokens",
    "cache_read_input_tokens": "cache_read_input_tokens",
}
_TRANSIENT_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class AnthropicParams(ProviderParams):
    base_url: str | None = "https://api.anthropic.com"
    system: str | None = None
    max_tokens: int = Field(default=1024, ge=1)
    anthropic_version: str = "2023-06-01"


class AnthropicMessages(ProviderHandler):
    """``anthropic.messages``: the text blocks of one answer per result. A chat request sends
    its conversation (system turns as ``system``) and options, streamed."""

    params_model = AnthropicParams

    async def call(
        self, job: Job, params: AnthropicParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        systems, messages = turns(job, params.system)
        body: dict[str, Any] = {
            "model": params.required("model"),
            "max_tokens": params.max_tokens,
            "messages": messages,
        }
        if systems:
            body["system"] = "\n\n".join(systems)
        body.update(params.body)
        body.update(_options(job.options))
        headers = {**params.headers, "anthropic-version": params.anthropic_version}
        if key:
            headers["x-api-key"] = key
        url = params.endpoint("/v1/messages")
        if streams(job, params):
            return await self._stream(url, body, headers, params, key, emit)
        data = await post_json(
            self.http, url, body, headers=headers, timeout=params.timeout, secret=key
        )
        blocks = objects(data, "content")
        text = "".join(b["text"] for b in blocks if b.get("type") == "text" and "text" in b)
        return Reply([text], counts(data.get("usage"), _USAGE))

    async def _stream(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        params: AnthropicParams,
        key: str | None,
        emit: Emit,
    ) -> Reply:
        parts: list[str] = []
        usage: dict[str, int] = {}
        async with post_sse(
            self.http,
            url,
            {**body, "stream": True},
            headers=headers,
            timeout=params.timeout,
            secret=key,
        ) as events:
            async for event in events:
                data = sse_json(event, key)
                kind = data.get("type") if isinstance(data, dict) else None
                if kind == "message_start":
                    usage.update(counts((data.get("message") or {}).get("usage"), _USAGE))
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        parts.append(delta["text"])
                        await emit(delta["text"])
                elif kind == "message_delta":
                    usage.update(counts(data.get("usage"), _USAGE))
                elif kind == "error":
                    _raise_stream_error(data, key)
                elif kind == "message_stop":
                    break
        return Reply(["".join(parts)], usage)


_OPTIONS = {"temperature", "top_p", "max_tokens"}


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A chat request's options as the messages API names them (``stop`` is
    ``stop_sequences``; what it has no name for is not sent)."""
    body = {name: value for name, value in options.items() if name in _OPTIONS}
    stop = options.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return body


def _raise_stream_error(data: dict[str, Any], key: str | None) -> None:
    error = data.get("error") or {}
    kind = error.get("type") if isinstance(error, dict) else None
    message = f"provider error in the stream: {error}"
    if kind in _TRANSIENT_TYPES:
        raise TransientError(message, secret=key)
    raise PermanentError(message, secret=key)

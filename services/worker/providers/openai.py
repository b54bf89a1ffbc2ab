"""OpenAI-compatible chat completions and embeddings (OpenAI, vLLM, Ollama, LM Studio, Together,
Groq ...): ``POST {base_url}/chat/completions`` and ``POST {base_url}/embeddings``."""

from collections import defaultdict
from typing import Any

from services.worker.job import Job
from services.worker.providers.base import (
    Emit,
    ProviderHandler,
    Reply,
    bearer,
    counts,
    dig,
    objects,
    streams,
    turns,
)
from services.worker.providers.errors import TransientError
from services.worker.providers.http import post_json, post_sse, sse_json
from services.worker.providers.params import ProviderParams

_USAGE = {"prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}


class OpenAIParams(ProviderParams):
    base_url: str | None = "https://api.openai.com/v1"
    system: str | None = None
    """A system message sent before the prompt."""


class OpenAIChat(ProviderHandler):
    """``openai.chat``: one choice per result; ``create_qty`` is sent as ``n``. A chat request
    sends its conversation and sampling options (over the params' ``body``), streamed."""

    params_model = OpenAIParams

    async def call(
        self, job: Job, params: OpenAIParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        systems, others = turns(job, params.system)
        messages = [{"role": "system", "content": s} for s in systems] + others
        body: dict[str, Any] = {"model": params.required("model"), "messages": messages}
        body.update(params.body)
        body.update(job.options)
        if want > 1:
            body["n"] = want
        url = params.endpoint("/chat/completions")
        headers = {**params.headers, **bearer(key)}
        if streams(job, params):
            return await self._stream(url, body, headers, params, key, emit)
        data = await post_json(
            self.http, url, body, headers=headers, timeout=params.timeout, secret=key
        )
        choices = sorted(objects(data, "choices"), key=lambda c: c.get("index", 0))
        texts = [dig(choice, "message.content") for choice in choices]
        return Reply(texts, counts(data.get("usage"), _USAGE))

    async def _stream(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        params: OpenAIParams,
        key: str | None,
        emit: Emit,
    ) -> Reply:
        # Usage comes in a last chunk only when asked for; ``body`` params may say otherwise.
        body = {"stream_options": {"include_usage": True}, **body, "stream": True}
        parts: dict[int, list[str]] = defaultdict(list)
        usage: dict[str, int] = {}
        async with post_sse(
            self.http, url, body, headers=headers, timeout=params.timeout, secret=key
        ) as events:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    break
                chunk = sse_json(event, key)
                if isinstance(chunk, dict) and "error" in chunk:
                    error = chunk["error"]
                    raise TransientError(f"provider error in the stream: {error}", secret=key)
                for choice in objects(chunk, "choices"):
                    index = choice.get("index", 0)
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts[index].append(text)
                        if index == 0:
                            await emit(text)
                usage = counts(chunk.get("usage"), _USAGE) or usage
        return Reply(["".join(parts[i]) for i in sorted(parts)], usage)


class OpenAIEmbeddings(ProviderHandler):
    """``openai.embeddings``: the prompt's embedding vector. Embeddings are deterministic, so
    ``create_qty`` copies the one vector rather than paying for the same call again."""

    params_model = OpenAIParams

    async def call(
        self, job: Job, params: OpenAIParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        body: dict[str, Any] = {"model": params.required("model"), "input": job.prompt}
        body.update(params.body)
        data = await post_json(
            self.http,
            params.endpoint("/embeddings"),
            body,
            headers={**params.headers, **bearer(key)},
            timeout=params.timeout,
            secret=key,
        )
        vector = dig(data, "data.0.embedding")
        return Reply([vector] * want, counts(data.get("usage"), {"prompt_tokens": "input_tokens"}))

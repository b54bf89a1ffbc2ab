"""Gemini: ``POST {base_url}/v1beta/models/{model}:generateContent`` (or
``:streamGenerateContent?alt=sse`` when streaming), key in ``x-goog-api-key``."""

from collections import defaultdict
from typing import Any

from services.worker.job import Job
from services.worker.providers.base import Emit, ProviderHandler, Reply, counts, objects
from services.worker.providers.errors import PermanentError
from services.worker.providers.http import post_json, post_sse, sse_json
from services.worker.providers.params import ProviderParams

_USAGE = {"promptTokenCount": "input_tokens", "candidatesTokenCount": "output_tokens"}


class GeminiParams(ProviderParams):
    base_url: str | None = "https://generativelanguage.googleapis.com"
    system: str | None = None


class GeminiGenerate(ProviderHandler):
    """``gemini.generate``: one candidate per result; ``create_qty`` is ``candidateCount``."""

    params_model = GeminiParams

    async def call(
        self, job: Job, params: GeminiParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": job.prompt}]}]}
        if params.system:
            body["systemInstruction"] = {"parts": [{"text": params.system}]}
        body.update(params.body)
        if want > 1:
            body["generationConfig"] = {**body.get("generationConfig", {}), "candidateCount": want}
        headers = {**params.headers, **({"x-goog-api-key": key} if key else {})}
        model = params.required("model")
        if params.stream:
            url = params.endpoint(f"/v1beta/models/{model}:streamGenerateContent?alt=sse")
            return await self._stream(url, body, headers, params, key, emit)
        url = params.endpoint(f"/v1beta/models/{model}:generateContent")
        data = await post_json(
            self.http, url, body, headers=headers, timeout=params.timeout, secret=key
        )
        if not isinstance(data, dict) or not data.get("candidates"):
            raise PermanentError(f"no candidates: {_blocked(data)}")
        candidates = sorted(objects(data, "candidates"), key=lambda c: c.get("index", 0))
        texts = ["".join(_texts(candidate)) for candidate in candidates]
        return Reply(texts, counts(data.get("usageMetadata"), _USAGE))

    async def _stream(
        self,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        params: GeminiParams,
        key: str | None,
        emit: Emit,
    ) -> Reply:
        parts: dict[int, list[str]] = defaultdict(list)
        usage: dict[str, int] = {}
        last: Any = {}
        async with post_sse(
            self.http, url, body, headers=headers, timeout=params.timeout, secret=key
        ) as events:
            async for event in events:
                last = sse_json(event, key)
                for candidate in objects(last, "candidates") if _has(last, "candidates") else []:
                    index = candidate.get("index", 0)
                    for text in _texts(candidate):
                        parts[index].append(text)
                        if index == 0:
                            await emit(text)
                if isinstance(last, dict):
                    usage = counts(last.get("usageMetadata"), _USAGE) or usage
        if not parts:
            raise PermanentError(f"no candidates: {_blocked(last)}")
        return Reply(["".join(parts[i]) for i in sorted(parts)], usage)


def _has(data: Any, key: str) -> bool:
    return isinstance(data, dict) and key in data


def _texts(candidate: dict[str, Any]) -> list[str]:
    content = candidate.get("content")
    parts = objects(content, "parts") if isinstance(content, dict) and "parts" in content else []
    return [p["text"] for p in parts if isinstance(p.get("text"), str)]


def _blocked(data: Any) -> str:
    feedback = data.get("promptFeedback") if isinstance(data, dict) else None
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return f"the prompt was blocked ({reason})" if reason else "the provider returned none"

"""Gemini: ``POST {base_url}/v1beta/models/{model}:generateContent`` (or
``:streamGenerateContent?alt=sse`` when streaming), key in ``x-goog-api-key``. A job's input
files go before the prompt as ``inlineData`` parts (``{mimeType, data}``, base64)."""

from collections import defaultdict
from typing import Any

from pydantic import Field

from services.worker.job import Job, JobContext
from services.worker.providers.base import Emit, ProviderHandler, Reply, counts, objects
from services.worker.providers.errors import PermanentError
from services.worker.providers.files import b64, from_base64
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
        body = await _request(job, params)
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


class GeminiImagesParams(GeminiParams):
    modalities: list[str] = Field(default_factory=lambda: ["TEXT", "IMAGE"])
    """Sent as ``generationConfig.responseModalities``."""


class GeminiImages(ProviderHandler):
    """``gemini.images``: a model that answers with images (``gemini-2.5-flash-image`` ...),
    given the job's input images if any. Each ``inlineData`` part of the answer is a file
    result, each run of text parts a text result, in the answer's order. ``create_qty`` makes
    that many calls (image models take no ``candidateCount``); no streaming."""

    params_model = GeminiImagesParams

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        answers = await super().execute(job, ctx)
        return [result for answer in answers for result in answer]

    async def call(
        self, job: Job, params: GeminiImagesParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        if params.stream:
            raise PermanentError("invalid params: gemini.images does not stream")
        body = await _request(job, params)
        config = body.get("generationConfig")
        body["generationConfig"] = {
            "responseModalities": params.modalities,
            **(config if isinstance(config, dict) else {}),
        }
        model = params.required("model")
        data = await post_json(
            self.http,
            params.endpoint(f"/v1beta/models/{model}:generateContent"),
            body,
            headers={**params.headers, **({"x-goog-api-key": key} if key else {})},
            timeout=params.timeout,
            secret=key,
        )
        if not isinstance(data, dict) or not data.get("candidates"):
            raise PermanentError(f"no candidates: {_blocked(data)}")
        candidates = sorted(objects(data, "candidates"), key=lambda c: c.get("index", 0))
        answers = [answer for c in candidates if (answer := _parts(c))]
        if not answers:
            reasons = sorted({str(c.get("finishReason")) for c in candidates})
            raise PermanentError(
                f"no image or text in the answer (finishReason {', '.join(reasons)})"
            )
        return Reply(answers, counts(data.get("usageMetadata"), _USAGE))


async def _request(job: Job, params: GeminiParams) -> dict[str, Any]:
    """The request body: the job's input files, then its prompt, in one user turn."""
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": file.media_type, "data": b64(await file.read())}}
        for _, file in sorted(job.files.items())
    ]
    parts.append({"text": job.prompt})
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if params.system:
        body["systemInstruction"] = {"parts": [{"text": params.system}]}
    body.update(params.body)
    return body


def _parts(candidate: dict[str, Any]) -> list[Any]:
    """A candidate's results: a file per ``inlineData`` part, a text per run of text parts
    (thoughts and blank runs left out)."""
    content = candidate.get("content")
    parts = objects(content, "parts") if isinstance(content, dict) and "parts" in content else []
    results: list[Any] = []
    run: list[str] = []
    for i, part in enumerate(parts):
        inline = part.get("inlineData")
        if isinstance(part.get("text"), str) and not part.get("thought"):
            run.append(part["text"])
        elif isinstance(inline, dict):
            _flush(run, results)
            mime = inline.get("mimeType")
            media_type = mime if isinstance(mime, str) else "application/octet-stream"
            results.append(from_base64(inline.get("data"), f"parts.{i}.inlineData", media_type))
    _flush(run, results)
    return results


def _flush(run: list[str], results: list[Any]) -> None:
    text = "".join(run)
    if text.strip():
        results.append(text)
    run.clear()


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

"""OpenAI images: ``POST {base_url}/images/generations`` (JSON) for a prompt alone and, when
the job has input files, ``POST {base_url}/images/edits`` (multipart). One result per image:
``data[].b64_json``, or the file at ``data[].url`` fetched through the providers' client."""

import orjson
from pydantic import Field

from services.worker.job import FileOutput, Job
from services.worker.providers.base import Emit, ProviderHandler, Reply, bearer, counts, objects
from services.worker.providers.errors import PermanentError
from services.worker.providers.files import fetch, from_base64, upload
from services.worker.providers.http import Upload, json_of, post_json, send
from services.worker.providers.openai import OpenAIParams

_USAGE = {"input_tokens": "input_tokens", "output_tokens": "output_tokens"}
_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


class OpenAIImagesParams(OpenAIParams):
    size: str | None = None
    """``1024x1024``, ``1536x1024``, ``auto`` ... (the model's own default when unset)."""
    quality: str | None = None
    """``low``, ``medium``, ``high``, ``hd``, ``standard`` ... (the model's default when unset)."""
    response_format: str | None = "b64_json"
    """Sent as is; null sends none (the gpt-image models answer base64 and take none)."""
    max_n: int = Field(default=10, ge=1, le=10)
    """The most images one call asks for (``n``; 1 for dall-e-3): ``create_qty`` beyond it
    makes more calls."""
    input: str = "image"
    """The input file to edit; when the job has none of that name, every input file but the
    mask (several are sent as ``image[]``)."""
    mask: str = "mask"
    """The input file sent as the edit's ``mask``, if the job has one of that name."""


class OpenAIImages(ProviderHandler):
    """``openai.images``: images generated from the prompt, or the job's input image edited
    as the prompt says; ``create_qty`` is sent as ``n`` (up to ``max_n`` a call)."""

    params_model = OpenAIImagesParams

    async def call(
        self, job: Job, params: OpenAIImagesParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        fields: dict[str, object] = {"model": params.required("model"), "prompt": job.prompt}
        fields["n"] = min(want, params.max_n)
        for name in ("size", "quality", "response_format"):
            if (value := getattr(params, name)) is not None:
                fields[name] = value
        fields.update(params.body)
        headers = {**params.headers, **bearer(key)}
        if job.files:
            response = await send(
                self.http,
                "POST",
                params.endpoint("/images/edits"),
                headers=headers,
                timeout=params.timeout,
                secret=key,
                data={
                    k: v if isinstance(v, str) else orjson.dumps(v).decode()
                    for k, v in fields.items()
                },
                files=await _uploads(job, params),
            )
            data = json_of(response, key)
        else:
            data = await post_json(
                self.http,
                params.endpoint("/images/generations"),
                fields,
                headers=headers,
                timeout=params.timeout,
                secret=key,
            )
        items = objects(data, "data")  # also: the answer is an object
        claimed = _FORMATS.get(str(data.get("output_format")), "image/png")
        images = [await self._image(item, i, claimed, params) for i, item in enumerate(items)]
        return Reply(images, counts(data.get("usage"), _USAGE))

    async def _image(
        self, item: dict[str, object], index: int, claimed: str, params: OpenAIImagesParams
    ) -> FileOutput:
        if item.get("b64_json") is not None:
            return from_base64(item["b64_json"], f"data.{index}.b64_json", claimed)
        if item.get("url") is not None:
            return await fetch(self.http, self.name, item["url"], params, claimed)
        raise PermanentError(
            f"unexpected answer from the provider: data.{index} has neither b64_json nor url"
        )


async def _uploads(job: Job, params: OpenAIImagesParams) -> list[Upload]:
    if params.input in job.files:
        names = [params.input]
    else:
        names = sorted(name for name in job.files if name != params.mask)
    if not names:
        raise PermanentError(f"no input image to edit (only the mask {params.mask!r})")
    field = "image" if len(names) == 1 else "image[]"
    uploads = []
    for name in names:
        file = job.files[name]
        uploads.append(upload(field, name, await file.read(), file.media_type))
    if (mask := job.files.get(params.mask)) is not None:
        uploads.append(upload("mask", mask.name, await mask.read(), mask.media_type))
    return uploads

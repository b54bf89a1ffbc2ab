"""``http.json``: any model server that takes and answers JSON (TorchServe, Triton, a custom
one), configured by URL and a request/response mapping. One result per call.

Files: the job's input files go base64 into the JSON body (``{file:<name>}`` in its strings),
or as multipart file fields beside the body's fields (``send_files: multipart``). An answer
whose type is binary (``image/*``, ``audio/*``, ``application/octet-stream`` ...: neither JSON
nor text) is one file result; a JSON answer holds base64 at ``result_path`` when
``result_base64`` is set."""

import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import Field

from services.worker.job import FileOutput, Job
from services.worker.providers.base import Emit, ProviderHandler, Reply, dig
from services.worker.providers.errors import PermanentError
from services.worker.providers.files import b64, from_base64, read_files, upload
from services.worker.providers.http import json_of, media_type_of, send
from services.worker.providers.params import ProviderParams

_PLACEHOLDER = re.compile(r"\{(prompt|file:[^{}]+|media_type:[^{}]+)\}")


class HttpJsonParams(ProviderParams):
    url: str | None = None
    """The full URL to POST to, for a server that needs no key; with an integration, its
    ``base_url`` followed by ``path``."""
    path: str = ""
    request: Any = Field(default_factory=lambda: {"prompt": "{prompt}"})
    """The JSON body; in any string in it, ``{prompt}`` is replaced by the prompt,
    ``{file:<name>}`` by the input file's bytes in base64 and ``{media_type:<name>}`` by its
    media type (``"data:{media_type:image};base64,{file:image}"`` is a data URL)."""
    send_files: Literal["base64", "multipart"] = "base64"
    """``multipart``: the body is sent as form fields (``request`` an object; values that are
    not strings as JSON), each input file as a file field named as the input, or as
    ``file_fields`` says."""
    file_fields: dict[str, str] = Field(default_factory=dict)
    """Multipart only: the form field of each input file (``{"image": "file"}``)."""
    result_path: str = ""
    """Dotted path of the result in the answer (``predictions.0``); empty: the whole answer."""
    result_base64: bool = False
    """The value at ``result_path`` is a file in base64 (or a ``data:`` URL): one file result."""
    result_media_type: str = "image/png"
    """The type of a base64 result that does not say its own (a data URL does)."""
    usage_paths: dict[str, str] = Field(default_factory=dict)
    """Our usage names to dotted paths in the answer (``{"input_tokens": "usage.in"}``)."""
    api_key_header: str = "Authorization"
    api_key_prefix: str = "Bearer "
    """Set from the integration (``auth_header``, ``auth_prefix``), never by the catalog."""

    def target(self) -> str:
        if self.url:
            return self.url
        if self.base_url:
            return self.base_url.rstrip("/") + ("/" + self.path.lstrip("/") if self.path else "")
        raise PermanentError("invalid params: url is required")


class HttpJson(ProviderHandler):
    params_model = HttpJsonParams

    async def call(
        self, job: Job, params: HttpJsonParams, key: str | None, want: int, emit: Emit
    ) -> Reply:
        if params.stream:
            raise PermanentError("invalid params: http.json does not stream")
        files = await read_files(job) if job.files else {}
        values = {"{prompt}": job.prompt}
        if params.send_files == "multipart":
            form = fill(params.request, values)
            if not isinstance(form, dict):
                raise PermanentError("invalid params: a multipart request must be an object")
            body: dict[str, Any] = {
                "data": {
                    str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
                    for k, v in form.items()
                },
                "files": [
                    upload(params.file_fields.get(n, n), n, data, job.files[n].media_type)
                    for n, data in files.items()
                ],
            }
        else:
            for name, data in files.items():
                values[f"{{file:{name}}}"] = b64(data)
                values[f"{{media_type:{name}}}"] = job.files[name].media_type
            body = {"json": fill(params.request, values)}
        response = await send(
            self.http,
            "POST",
            params.target(),
            headers={**params.headers, **_auth(params, key)},
            timeout=params.timeout,
            secret=key,
            **body,
        )
        media_type = media_type_of(response)
        if _binary(media_type):
            return Reply([FileOutput(response.content, media_type)])
        data = json_of(response, key)
        usage: dict[str, int] = {}
        for name, path in params.usage_paths.items():
            value = dig(data, path)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PermanentError(f"unexpected answer from the provider: {path!r} is no count")
            usage[name] = value
        result = dig(data, params.result_path)
        if params.result_base64:
            result = from_base64(
                result, params.result_path or "the answer", params.result_media_type
            )
        return Reply([result], usage)


def _binary(media_type: str) -> bool:
    """Whether an answer of this type is a file rather than JSON (a missing type, text and
    JSON types are read as JSON, as they always were)."""
    if not media_type or media_type.startswith("text/"):
        return False
    return not (media_type == "application/json" or media_type.endswith("+json"))


def _auth(params: HttpJsonParams, key: str | None) -> dict[str, str]:
    return {params.api_key_header: f"{params.api_key_prefix}{key}"} if key else {}


def fill(template: Any, prompt: str | Mapping[str, str]) -> Any:
    """``template`` with its placeholders replaced in every string (keys included), nothing
    else: ``prompt`` is the prompt (``{prompt}``), or the text of each placeholder. A
    ``{file:...}`` or ``{media_type:...}`` naming no input of the job is an error."""
    values = {"{prompt}": prompt} if isinstance(prompt, str) else prompt
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: _value(values, m.group(0)), template)
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {fill(k, values): fill(v, values) for k, v in template.items()}
    return template


def _value(values: Mapping[str, str], placeholder: str) -> str:
    try:
        return values[placeholder]
    except KeyError:
        name = placeholder[1:-1].split(":", 1)[1]
        raise PermanentError(
            f"invalid params: request names the input file {name!r}, which this job lacks"
        ) from None

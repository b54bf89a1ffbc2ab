"""``http.json``: any model server that takes and answers JSON (TorchServe, Triton, a custom
one), configured by URL and a request/response mapping. One result per call."""

from typing import Any

from pydantic import Field

from services.worker.job import Job
from services.worker.providers.base import Emit, ProviderHandler, Reply, dig
from services.worker.providers.errors import PermanentError
from services.worker.providers.http import post_json
from services.worker.providers.params import ProviderParams


class HttpJsonParams(ProviderParams):
    url: str | None = None
    """The full URL to POST to, for a server that needs no key; with an integration, its
    ``base_url`` followed by ``path``."""
    path: str = ""
    request: Any = Field(default_factory=lambda: {"prompt": "{prompt}"})
    """The JSON body; ``{prompt}`` in any string in it is replaced by the prompt."""
    result_path: str = ""
    """Dotted path of the result in the answer (``predictions.0``); empty: the whole answer."""
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
        data = await post_json(
            self.http,
            params.target(),
            fill(params.request, job.prompt),
            headers={**params.headers, **_auth(params, key)},
            timeout=params.timeout,
            secret=key,
        )
        usage: dict[str, int] = {}
        for name, path in params.usage_paths.items():
            value = dig(data, path)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PermanentError(f"unexpected answer from the provider: {path!r} is no count")
            usage[name] = value
        return Reply([dig(data, params.result_path)], usage)


def _auth(params: HttpJsonParams, key: str | None) -> dict[str, str]:
    return {params.api_key_header: f"{params.api_key_prefix}{key}"} if key else {}


def fill(template: Any, prompt: str) -> Any:
    """``template`` with ``{prompt}`` replaced in every string (keys included), nothing else."""
    if isinstance(template, str):
        return template.replace("{prompt}", prompt)
    if isinstance(template, list):
        return [fill(item, prompt) for item in template]
    if isinstance(template, dict):
        return {fill(k, prompt): fill(v, prompt) for k, v in template.items()}
    return template

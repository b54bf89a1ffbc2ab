"""What every provider handler shares: params, retries per call, ``create_qty`` as the provider's
own count (``n``, ``candidateCount``) topped up by repeated calls, usage, and streaming."""

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.worker.job import Job, JobContext
from services.worker.providers.errors import BrokenStreamError, PermanentError, TransientError
from services.worker.providers.http import ProviderHttp
from services.worker.providers.params import ProviderParams
from services.worker.providers.retry import with_retries

Emit = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reply:
    """One provider call's results and usage (``input_tokens``, ``output_tokens`` ...)."""

    results: list[Any]
    usage: dict[str, int] = field(default_factory=dict)


class ProviderHandler(ABC):
    """Subclasses implement ``call``: one request to the provider for up to ``want`` results."""

    params_model: ClassVar[type[ProviderParams]] = ProviderParams

    def __init__(self, name: str, http: ProviderHttp) -> None:
        self.name = name
        self._http = http

    @property
    def http(self) -> ProviderHttp:
        return self._http

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        self._http.check_params(job.params)
        params = self.params_model.parse(job.params)
        key = params.key()
        results: list[Any] = []
        while len(results) < job.create_qty:
            want = job.create_qty - len(results)
            # Only the first result streams: subscribers see one answer being written.
            reply = await self._attempts(job, ctx, params, key, want, publish=not results)
            ctx.add_usage(**reply.usage)
            if not reply.results:
                raise PermanentError("the provider returned no results")
            results.extend(reply.results[:want])
        return results

    async def _attempts(
        self,
        job: Job,
        ctx: JobContext,
        params: ProviderParams,
        key: str | None,
        want: int,
        *,
        publish: bool,
    ) -> Reply:
        emitted = False

        async def emit(chunk: str) -> None:
            nonlocal emitted
            if publish:
                emitted = True
                await ctx.emit(chunk)

        async def attempt(used: ProviderParams, used_key: str | None) -> Reply:
            try:
                return await self.call(job, used, used_key, want, emit)
            except TransientError as exc:
                if emitted:
                    # Subscribers already saw part of this answer: a retry would repeat it.
                    raise BrokenStreamError(f"stream broke after partial output: {exc}") from exc
                raise

        async def on_deployment(raw: Mapping[str, Any]) -> Reply:
            self._http.check_params(raw)
            deployed = self.params_model.parse(raw)
            return await attempt(deployed, deployed.key())

        async def retried() -> Reply:
            return await attempt(params, key)

        if ctx.router is not None:
            # A job of a model: each call to one of its deployments, failing over between them.
            return await ctx.router.call(on_deployment)
        return await with_retries(self.name, params, retried)

    @abstractmethod
    async def call(self, job: Job, params: Any, key: str | None, want: int, emit: Emit) -> Reply:
        """One provider request; ``emit`` publishes partial output when ``params.stream``."""


def dig(data: Any, path: str) -> Any:
    """``data`` at a dotted path (``choices.0.message.content``); a clear error when absent."""
    value = data
    for part in path.split(".") if path else []:
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, TypeError, ValueError):
            raise PermanentError(f"unexpected answer from the provider: no {path!r}") from None
    return value


def objects(data: Any, path: str) -> list[dict[str, Any]]:
    """The list of JSON objects at ``path``; a clear error when it is anything else."""
    value = dig(data, path)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PermanentError(f"unexpected answer from the provider: {path!r} is not a list")
    return value


def counts(usage: Any, names: Mapping[str, str]) -> dict[str, int]:
    """Our usage names (``input_tokens`` ...) from the provider's usage object."""
    if not isinstance(usage, dict):
        return {}
    found: dict[str, int] = {}
    for theirs, ours in names.items():
        value = usage.get(theirs)
        if isinstance(value, int) and not isinstance(value, bool):
            found[ours] = value
    return found


def turns(job: Job, system: str | None) -> tuple[list[str], list[dict[str, str]]]:
    """A job's system texts (the params' ``system`` first, then the conversation's) and its
    other turns: a chat request's conversation, or the prompt as the one user turn."""
    messages = list(job.messages) if job.messages else [{"role": "user", "content": job.prompt}]
    systems = [system] if system else []
    systems += [m["content"] for m in messages if m["role"] == "system"]
    others = [
        {"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"
    ]
    return systems, others


def streams(job: Job, params: ProviderParams) -> bool:
    """Whether to ask the provider for a stream: when the params say so, and for every chat
    request, whose caller may be reading its chunks."""
    return params.stream or job.messages is not None


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}

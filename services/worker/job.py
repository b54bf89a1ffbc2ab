"""What a handler sees and promises: the job it runs and the one interface it implements."""

import builtins
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar
from uuid import UUID

from libs.contracts import TaskMessage
from libs.contracts.files import FileRef

T = TypeVar("T")

BlobReader = Callable[[str], Awaitable[bytes]]
"""The bytes of a blob by its sha256; ``FileNotFoundError`` when it is not stored."""


class HandlerError(Exception):
    """An expected failure of a job; its message becomes the failed result's ``error``."""


async def _no_store(sha256: str) -> bytes:
    raise HandlerError("this worker has no blob store to read input files from")


@dataclass(frozen=True, slots=True)
class InputFile:
    """One of the job's input files: what its reference says, and its bytes on ``read()``."""

    name: str
    """The offer's name for this input (``image``, ``mask`` ...)."""
    id: str
    sha256: str
    media_type: str
    bytes: int
    width: int | None
    height: int | None
    reader: BlobReader = field(default=_no_store, repr=False, compare=False)

    @classmethod
    def of(cls, name: str, ref: FileRef, reader: BlobReader = _no_store) -> "InputFile":
        return cls(
            name, ref.id, ref.sha256, ref.media_type, ref.bytes, ref.width, ref.height, reader
        )

    async def read(self) -> builtins.bytes:
        """The file's bytes, from the worker's blob store. A blob that is not there any more
        fails the job (``HandlerError``): running it again cannot bring it back."""
        try:
            return await self.reader(self.sha256)
        except FileNotFoundError:
            raise HandlerError(
                f"input file {self.name!r} ({self.id}) is missing from the blob store"
            ) from None


@dataclass(frozen=True, slots=True)
class FileOutput:
    """A file among a handler's results: the worker checks it (an image must decode; its real
    type wins over ``media_type``), stores its bytes and puts a file reference in its place."""

    data: bytes = field(repr=False)
    media_type: str

    def __repr__(self) -> str:
        return f"FileOutput({self.media_type}, {len(self.data)} bytes)"


NO_FILES: Mapping[str, InputFile] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Job:
    request_id: UUID
    attempt: int
    prompt: str
    params: Mapping[str, Any] = field(default_factory=dict)
    create_qty: int = 1
    messages: Sequence[Mapping[str, str]] | None = None
    """A chat request's conversation; ``prompt`` is its last turn."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """A chat request's sampling options, for the provider's request."""
    files: Mapping[str, InputFile] = field(default_factory=lambda: NO_FILES)
    """The request's input files, by the offer's name for each."""

    @classmethod
    def from_task(cls, task: TaskMessage, reader: BlobReader | None = None) -> "Job":
        """``reader`` fetches the input files' bytes (the worker's blob store)."""
        read = reader or _no_store
        files = (
            MappingProxyType({n: InputFile.of(n, ref, read) for n, ref in task.files.items()})
            if task.files
            else NO_FILES
        )
        return cls(
            request_id=task.request_id,
            attempt=task.attempt,
            prompt=task.prompt,
            params=task.params,
            create_qty=task.create_qty,
            messages=task.messages,
            options=task.options or {},
            files=files,
        )


ChunkSink = Callable[[str], Awaitable[None]]
"""Where a job's partial output goes: the executor decides, the handler only calls ``emit``."""


async def _discard(chunk: str) -> None:
    return None


class CallRouter(Protocol):
    """Sends each provider call of a job of a model to one of the model's deployments, and
    again to another when one did not answer (``providers.routing``)."""

    @property
    def deployment(self) -> str | None:
        """The deployment last called: whose answer the job reports, or its last failure."""
        ...

    @property
    def served(self) -> str | None:
        """``name@version`` of the model of that deployment (a fallback's, when one was
        called); None before any call."""
        ...

    async def call(self, attempt: Callable[[Mapping[str, Any]], Awaitable[T]]) -> T:
        """``await attempt(params)`` with the params of a deployment (its integration's URL
        and key, its model's name), on as many deployments as it takes."""
        ...


class JobContext:
    """What a handler may do besides returning results: stream partial output, report usage."""

    __slots__ = ("_sink", "router", "usage")

    def __init__(self, sink: ChunkSink | None = None, router: CallRouter | None = None) -> None:
        self._sink = sink or _discard
        self.usage: dict[str, int] = {}
        """Provider usage counts of this job (``input_tokens``, ``output_tokens`` ...)."""
        self.router = router
        """For a job of a model (its task has a ``route``): where its provider calls go. Handlers
        that make no provider call ignore it."""

    @property
    def deployment(self) -> str | None:
        """The deployment whose answer (or last failure) a job of a model reports."""
        return self.router.deployment if self.router is not None else None

    @property
    def served_model(self) -> str | None:
        """``name@version`` of the model that deployment serves."""
        return self.router.served if self.router is not None else None

    async def emit(self, chunk: str) -> None:
        """Publish a piece of partial output as soon as it is known (token streaming)."""
        await self._sink(chunk)

    def add_usage(self, **counts: int) -> None:
        for name, count in counts.items():
            self.usage[name] = self.usage.get(name, 0) + count


class Handler(Protocol):
    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        """Run ``job`` and return its results (text, JSON values, ``FileOutput``s). May run
        again for the same job (redelivery)."""
        ...

"""What a handler sees and promises: the job it runs and the one interface it implements."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from libs.contracts import TaskMessage


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

    @classmethod
    def from_task(cls, task: TaskMessage) -> "Job":
        return cls(
            request_id=task.request_id,
            attempt=task.attempt,
            prompt=task.prompt,
            params=task.params,
            create_qty=task.create_qty,
            messages=task.messages,
            options=task.options or {},
        )


ChunkSink = Callable[[str], Awaitable[None]]
"""Where a job's partial output goes: the executor decides, the handler only calls ``emit``."""


async def _discard(chunk: str) -> None:
    return None


class JobContext:
    """What a handler may do besides returning results: stream partial output, report usage."""

    __slots__ = ("_sink", "usage")

    def __init__(self, sink: ChunkSink | None = None) -> None:
        self._sink = sink or _discard
        self.usage: dict[str, int] = {}
        """Provider usage counts of this job (``input_tokens``, ``output_tokens`` ...)."""

    async def emit(self, chunk: str) -> None:
        """Publish a piece of partial output as soon as it is known (token streaming)."""
        await self._sink(chunk)

    def add_usage(self, **counts: int) -> None:
        for name, count in counts.items():
            self.usage[name] = self.usage.get(name, 0) + count


class HandlerError(Exception):
    """An expected failure of a job; its message becomes the failed result's ``error``."""


class Handler(Protocol):
    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        """Run ``job`` and return its results. May run again for the same job (redelivery)."""
        ...

"""What a handler sees and promises: the job it runs and the one interface it implements."""

from collections.abc import Mapping
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

    @classmethod
    def from_task(cls, task: TaskMessage) -> "Job":
        return cls(
            request_id=task.request_id,
            attempt=task.attempt,
            prompt=task.prompt,
            params=task.params,
            create_qty=task.create_qty,
        )


class HandlerError(Exception):
    """An expected failure of a job; its message becomes the failed result's ``error``."""


class Handler(Protocol):
    async def execute(self, job: Job) -> list[Any]:
        """Run ``job`` and return its results. May run again for the same job (redelivery)."""
        ...

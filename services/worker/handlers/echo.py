"""Built-in handlers that need no provider: for demos, tests and benchmarks. Each reports a
provider-like usage, counting a word as a token: ``input_tokens`` the prompt's words,
``output_tokens`` the words of all its results, so per-token prices work without a provider."""

import asyncio
import random
import re
from collections.abc import Mapping
from typing import Any

from services.worker.job import HandlerError, Job, JobContext


class EchoText:
    """``echo.text``: the prompt, after the optional param ``prefix``, ``create_qty`` times."""

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        prefix = job.params.get("prefix", "")
        if not isinstance(prefix, str):
            raise HandlerError("invalid params: prefix must be a string")
        return _used([prefix + job.prompt] * job.create_qty, job, ctx)


class EchoDelay:
    """``echo.delay``: waits ``delay_ms``, then fails with probability ``failure_rate``."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        delay_ms = _number(job.params, "delay_ms", 0)
        failure_rate = _number(job.params, "failure_rate", 0)
        if delay_ms < 0:
            raise HandlerError("invalid params: delay_ms must be >= 0")
        if not 0 <= failure_rate <= 1:
            raise HandlerError("invalid params: failure_rate must be between 0 and 1")
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if failure_rate and self._rng.random() < failure_rate:
            raise HandlerError("simulated failure")
        return _used([job.prompt] * job.create_qty, job, ctx)


class EchoStream:
    """``echo.stream``: the prompt streamed word by word, ``delay_ms`` (default 50) apart; the
    chunks put together are the prompt, which is also the result (``create_qty`` times)."""

    _WORDS = re.compile(r"\s*\S+\s*")

    async def execute(self, job: Job, ctx: JobContext) -> list[Any]:
        delay_ms = _number(job.params, "delay_ms", 50)
        if delay_ms < 0:
            raise HandlerError("invalid params: delay_ms must be >= 0")
        for i, word in enumerate(self._WORDS.findall(job.prompt)):
            if i and delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            await ctx.emit(word)
        return _used([job.prompt] * job.create_qty, job, ctx)


def _used(results: list[str], job: Job, ctx: JobContext) -> list[Any]:
    """``results``, once their usage is reported (a word a token)."""
    ctx.add_usage(
        input_tokens=len(job.prompt.split()),
        output_tokens=sum(len(result.split()) for result in results),
    )
    return list(results)


def _number(params: Mapping[str, Any], key: str, default: float) -> float:
    value = params.get(key, default)
    # bool is an int subclass, but ``{"delay_ms": true}`` is a caller's mistake, not 1 ms.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HandlerError(f"invalid params: {key} must be a number")
    return float(value)

"""Idempotent writes of job outcomes, through the statement shared with recon."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from libs.outcomes import record_outcomes


async def record_progress(
    pool: asyncpg.Pool[Any],
    *,
    started: list[uuid.UUID],
    ended: list[uuid.UUID],
    statuses: list[str],
    results: list[list[Any] | None],
    errors: list[str | None],
) -> list[asyncpg.Record]:
    """Apply a batch; returns the new state of every request it changed."""
    return await record_outcomes(
        pool, started=started, ended=ended, statuses=statuses, results=results, errors=errors
    )

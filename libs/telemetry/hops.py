"""How long a request spends in each hop of its path, one histogram for every process.

The path, hop by hop, with the process that times it (docs/observability.md):

- ``commit``: accepted by the submission core → its request committed (api);
- committed → published on ``relai:tasks``: the relay's ``relai_relay_lag_seconds`` (api);
- ``pickup``: published → taken by a worker (worker, from the entry id: Redis's clock);
- the handler's run: ``relai_job_duration_seconds`` (worker);
- ``write``: the handler's end → its result written on ``relai:results`` (worker);
- ``record``: result written → its outcome committed (api, from the entry id: Redis's clock);
- ``push``: outcome committed → sent on a WebSocket (api, from ``updated_at``: the database's
  clock).

Hops measured across two clocks are as good as the machines' time synchronisation; a negative
difference counts as 0.
"""

from __future__ import annotations

import time
from typing import Literal

from prometheus_client import Histogram

Hop = Literal["commit", "pickup", "write", "record", "push"]

HOP_SECONDS = Histogram(
    "relai_hop_seconds",
    "Time a request spent in one hop of its path, by hop: commit (accepted to committed), "
    "pickup (published on relai:tasks to taken by a worker), write (a job's end to its result "
    "written on relai:results), record (result written to its outcome committed), push (outcome "
    "committed to sent on a WebSocket).",
    ["hop"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def hop(name: Hop) -> Histogram:
    """The histogram of one hop; taking it at import exports the hop at 0 from the start."""
    return HOP_SECONDS.labels(hop=name)


def since_entry(entry_id: bytes | str) -> float:
    """Seconds since a stream entry was added, by the millisecond time in its id (Redis's
    clock), never negative."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return max(0.0, time.time() - int(raw.split("-", 1)[0]) / 1000)


def since_epoch(at: float) -> float:
    """Seconds since ``at`` (a Unix time from another machine's clock), never negative."""
    return max(0.0, time.time() - at)

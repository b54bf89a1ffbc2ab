"""Stride scheduling between the priority tiers' queues (fair scheduling; see ``_intake``).

Each tier has a weight and a *pass*: the jobs taken from it so far, each counting 1/weight. The
tier with the lowest pass among those with jobs waiting goes next (on a tie, the heavier one), so
that while several wait each gets slots in proportion to its weight, and none is starved: a
light tier's pass stays put while the heavier ones' grow past it.

A tier that had nothing waiting starts again at the lowest pass of those that kept waiting, or at
its own if that is higher: being idle banks no credit (a tier back after an hour does not get
the next hour of slots to itself), and being idle for a moment, between two reads of what waits,
forgives no debt. When no tier kept waiting, every pass starts again from zero.

Slots are planned one at a time, so a tier gets a portion of the free slots and never all of
them while others wait; when slots free one by one, each goes to the tier whose turn it is.
The passes are this process's: every worker keeps the shares over its own slots.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


class Stride:
    def __init__(self, weights: Mapping[str, int]) -> None:
        """``weights``: each name's (a tier's queue) share of the slots, relative, >= 1."""
        if not weights or min(weights.values()) < 1:
            raise ValueError("every weight must be at least 1")
        self._weights = dict(weights)
        self._passes = dict.fromkeys(weights, 0.0)
        self._waiting: set[str] = set()

    def plan(self, waiting: Collection[str], slots: int) -> list[tuple[str, int]]:
        """How many of ``slots`` each name in ``waiting`` (those with jobs waiting now) gets, in
        the order of their first turn. Nothing is counted until ``served`` says what was
        taken."""
        self._wait(waiting)
        passes = {name: self._passes[name] for name in waiting}
        shares: dict[str, int] = {}
        for _ in range(slots if passes else 0):
            name = min(passes, key=lambda n: (passes[n], -self._weights[n], n))
            shares[name] = shares.get(name, 0) + 1
            passes[name] += 1 / self._weights[name]
        return list(shares.items())

    def served(self, name: str, jobs: int) -> None:
        """``jobs`` were taken from ``name``: its pass grows by ``jobs / weight``."""
        self._passes[name] += jobs / self._weights[name]

    def passes(self) -> dict[str, float]:
        return dict(self._passes)

    def _wait(self, waiting: Collection[str]) -> None:
        kept = self._waiting.intersection(waiting)
        if not kept:
            self._passes = dict.fromkeys(self._passes, 0.0)
        floor = min((self._passes[name] for name in kept), default=0.0)
        for name in waiting:
            if name not in self._waiting:
                self._passes[name] = max(self._passes[name], floor)
        self._waiting = set(waiting)

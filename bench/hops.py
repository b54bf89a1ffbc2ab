"""Where a request's time goes: the per-hop histograms the processes export (``relai_hop_seconds``
with the relay's lag and the handler's duration, docs/observability.md), scraped from their
operator ports before and after a run, and read as Prometheus's ``histogram_quantile`` reads
them (linear within a bucket)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, str, float]
"""A histogram bucket: the hop, its upper bound ``le``, its cumulative count."""

HOPS: tuple[tuple[str, str, str | None], ...] = (
    ("commit", "relai_hop_seconds", "commit"),
    ("relay", "relai_relay_lag_seconds", None),
    ("pickup", "relai_hop_seconds", "pickup"),
    ("handler", "relai_job_duration_seconds", None),
    ("write", "relai_hop_seconds", "write"),
    ("record", "relai_hop_seconds", "record"),
    ("push", "relai_hop_seconds", "push"),
)
"""The hops in a request's order: the name printed, the histogram, its ``hop`` label."""


@dataclass(frozen=True)
class Buckets:
    """Cumulative counts by upper bound, per hop, summed over every process and label."""

    counts: dict[str, dict[float, float]]

    def minus(self, before: Buckets) -> Buckets:
        return Buckets(
            {
                hop: {le: n - before.counts.get(hop, {}).get(le, 0.0) for le, n in by_le.items()}
                for hop, by_le in self.counts.items()
            }
        )

    def count(self, hop: str) -> float:
        by_le = self.counts.get(hop, {})
        return by_le.get(math.inf, 0.0)

    def quantile(self, q: float, hop: str) -> float | None:
        """Seconds, or None without observations."""
        by_le = sorted(self.counts.get(hop, {}).items())
        total = by_le[-1][1] if by_le else 0.0
        if total <= 0:
            return None
        rank = q * total
        lower, below = 0.0, 0.0
        for le, cumulative in by_le:
            if cumulative >= rank:
                if math.isinf(le):
                    return lower  # past the last finite bound: Prometheus answers that bound
                inside = cumulative - below
                return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = le, cumulative
        return lower


def scrape(urls: Iterable[str]) -> Buckets:
    """The hops' buckets from every ``/metrics`` in ``urls``, summed."""
    wanted = {(metric, label) for _, metric, label in HOPS}
    names = {(metric, label): name for name, metric, label in HOPS}
    counts: dict[str, dict[float, float]] = {}
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.endswith("_bucket"):
                    continue
                metric = sample.name.removesuffix("_bucket")
                key = (metric, sample.labels.get("hop"))
                if key not in wanted:
                    continue
                le = float(sample.labels["le"])
                by_le = counts.setdefault(names[key], {})
                by_le[le] = by_le.get(le, 0.0) + sample.value
    return Buckets(counts)


def table(buckets: Buckets) -> str:
    """One line per hop: observations, p50 and p99 in ms; then the sum of the p50s."""

    def ms(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds * 1000:.1f}"

    header = f"{'hop':<10}{'count':>9}{'p50 ms':>9}{'p99 ms':>9}"
    lines = [header, "-" * len(header)]
    medians = 0.0
    for name, _, _ in HOPS:
        p50 = buckets.quantile(0.5, name)
        medians += p50 or 0.0
        lines.append(
            f"{name:<10}{buckets.count(name):>9.0f}{ms(p50):>9}"
            f"{ms(buckets.quantile(0.99, name)):>9}"
        )
    lines.append(f"{'sum of p50s':<28}{medians * 1000:>9.1f}")
    return "\n".join(lines)

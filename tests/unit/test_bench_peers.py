"""The peers' bench (bench/peers): its table, its closing ratio line, its percentiles and how
it reads Relai's own figures."""

import json
import math
from pathlib import Path

import pytest

from bench.peers.driver import (
    Figures,
    drain_after_last_submit,
    format_table,
    latencies_ms,
    parse_completions,
    percentile,
    ratio_line,
    read_relai,
    throughput,
)


def test_the_table_has_one_row_per_queue_and_a_dash_for_a_missing_figure() -> None:
    rows = [
        Figures("relai", 5000.0, 4.25, 12.5, 1.04, note="rate 500/s, 2025-01-01"),
        Figures("celery", 1234.4, 30.0, 80.06, None, failures=["sleep: timed out: 3/10 done"]),
        Figures("arq", failures=["noop/rate: worker not ready after 60 s"]),
    ]
    table = format_table(rows, rate=500, sleep_jobs=1000).splitlines()
    assert table[0].split() == [
        "queue", "tasks/s", "p50", "ms", "@500/s", "p99", "ms", "@500/s", "1000x1s", "drain",
        "s", "note",
    ]  # fmt: skip
    assert set(table[1]) == {"-"}
    assert table[2].split() == [
        "relai",
        "5000",
        "4.2",
        "12.5",
        "1.04",
        "rate",
        "500/s,",
        "2025-01-01",
    ]
    assert table[3].split()[:5] == ["celery", "1234", "30.0", "80.1", "-"]
    assert table[3].endswith("sleep: timed out: 3/10 done")
    assert table[4].split()[:5] == ["arq", "-", "-", "-", "-"]
    assert "worker not ready" in table[4]


def test_the_ratio_line_takes_the_best_peer_of_each_column() -> None:
    relai = Figures("relai", throughput=3000.0, p99_ms=20.0)
    peers = [
        Figures("celery", throughput=1000.0, p99_ms=10.0),
        Figures("taskiq", throughput=2000.0, p99_ms=40.0),
        Figures("arq", throughput=1500.0, p99_ms=500.0),
    ]
    assert ratio_line(relai, peers, rate=500) == (
        "relai vs best peer: throughput ratio 1.50 (taskiq), p99 at 500/s ratio 2.00 (celery)"
    )


def test_the_ratio_line_ignores_failed_and_missing_figures() -> None:
    relai = Figures("relai", throughput=3000.0, p99_ms=20.0)
    peers = [
        Figures("celery", failures=["noop/rate: worker exited (1)"]),
        Figures("dramatiq", throughput=math.nan, p99_ms=None, failures=["rate: timed out"]),
        Figures("arq", throughput=600.0, p99_ms=None, failures=["rate: producer failed (1)"]),
        Figures("pgqueuer", throughput=None, p99_ms=8.0, failures=["noop: timed out"]),
    ]
    assert ratio_line(relai, peers, rate=100) == (
        "relai vs best peer: throughput ratio 5.00 (arq), p99 at 100/s ratio 2.50 (pgqueuer)"
    )
    assert ratio_line(relai, [Figures("celery", failures=["x"])], rate=500) == (
        "relai vs best peer: throughput ratio - (no figures), p99 at 500/s ratio - (no figures)"
    )
    assert ratio_line(None, peers, rate=500) is None


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(list(reversed(values)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_the_figures_come_from_the_completions_the_tasks_pushed() -> None:
    pairs = parse_completions([b"100.000000 100.010000", "100.500000 101.000000", b"101 102.5"])
    assert pairs == [(100.0, 100.01), (100.5, 101.0), (101.0, 102.5)]
    assert throughput(pairs) == pytest.approx(3 / 2.5)
    assert latencies_ms(pairs) == pytest.approx([10.0, 500.0, 1500.0])
    assert drain_after_last_submit(pairs) == pytest.approx(1.5)


def test_relai_s_row_is_read_from_the_figures_python_m_bench_wrote(tmp_path: Path) -> None:
    path = tmp_path / "relai.json"
    assert read_relai(path) is None
    path.write_text(
        json.dumps(
            {
                "date": "2025-05-01T10:00:00+00:00",
                "throughput": 4321.5,
                "saturation": 20000,
                "rate": 500,
                "p50_ms": 3.5,
                "p99_ms": 9.25,
                "sleep_jobs": 1000,
                "drain_s": 1.12,
            }
        )
    )
    relai = read_relai(path)
    assert relai is not None
    assert (relai.name, relai.throughput, relai.p50_ms, relai.p99_ms, relai.drain_s) == (
        "relai", 4321.5, 3.5, 9.25, 1.12,
    )  # fmt: skip
    assert relai.note == "rate 500/s, 2025-05-01T10:00:00+00:00"
    assert not relai.failed

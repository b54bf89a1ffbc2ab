"""The bench's reading of the per-hop histograms: differences of two scrapes, and quantiles read
as Prometheus's ``histogram_quantile`` reads them."""

import math

from bench.hops import Buckets, table


def test_quantiles_are_read_linearly_within_a_bucket() -> None:
    # 10 observations up to 1 ms, 80 more up to 5 ms, 10 more up to 10 ms.
    buckets = Buckets({"commit": {0.001: 10, 0.005: 90, 0.01: 100, math.inf: 100}})
    assert buckets.count("commit") == 100
    assert buckets.quantile(0.5, "commit") == 0.001 + 0.004 * (40 / 80)
    assert buckets.quantile(0.99, "commit") == 0.005 + 0.005 * (9 / 10)
    assert buckets.quantile(0.05, "commit") == 0.001 * (5 / 10)
    assert buckets.quantile(0.5, "push") is None


def test_past_the_last_bound_the_last_bound_is_answered() -> None:
    buckets = Buckets({"pickup": {0.5: 1, 30.0: 1, math.inf: 10}})
    assert buckets.quantile(0.99, "pickup") == 30.0


def test_a_run_is_what_the_second_scrape_adds_to_the_first() -> None:
    before = Buckets({"relay": {0.01: 5, math.inf: 5}})
    after = Buckets({"relay": {0.01: 5, math.inf: 9}, "push": {0.01: 2, math.inf: 2}})
    run = after.minus(before)
    assert (run.count("relay"), run.count("push")) == (4, 2)
    assert run.quantile(0.5, "relay") == 0.01  # every new one past 10 ms

    lines = table(run).splitlines()
    assert lines[0].split() == ["hop", "count", "p50", "ms", "p99", "ms"]
    assert [line.split()[0] for line in lines[2:-1]] == [
        "commit",
        "relay",
        "pickup",
        "handler",
        "write",
        "record",
        "push",
    ]
    assert lines[2].split() == ["commit", "0", "-", "-"]

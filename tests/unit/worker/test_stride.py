"""Stride scheduling between the tiers' queues: the order of the turns, the shares by weight,
and a tier back from idle that starts at the lowest pass, with no credit banked."""

from collections import Counter

import pytest

from services.worker._stride import Stride

WEIGHTS = {"priority": 16, "default": 4, "flex": 1}


def _one_by_one(stride: Stride, waiting: list[str], slots: int) -> list[str]:
    """Who gets each of ``slots`` freed one at a time, each taken at once."""
    order = []
    for _ in range(slots):
        [(name, share)] = stride.plan(waiting, 1)
        assert share == 1
        stride.served(name, 1)
        order.append(name)
    return order


def test_the_heaviest_goes_first_on_a_tie_and_each_gets_its_weight_in_turn() -> None:
    order = _one_by_one(Stride(WEIGHTS), ["flex", "default", "priority"], 21)
    assert order[0] == "priority"
    assert Counter(order) == {"priority": 16, "default": 4, "flex": 1}
    # The lighter ones are spread among the heavier's turns, not left to the end.
    assert order.index("default") < 5
    assert "flex" in order[:17]


def test_the_free_slots_are_shared_by_weight_not_grabbed_by_the_first() -> None:
    stride = Stride(WEIGHTS)
    plan = stride.plan(["flex", "default", "priority"], 21)
    assert plan[0][0] == "priority"
    assert dict(plan) == {"priority": 16, "default": 4, "flex": 1}
    assert dict(stride.plan(["default", "flex"], 10)) == {"default": 8, "flex": 2}


def test_a_tier_alone_gets_every_slot() -> None:
    assert Stride(WEIGHTS).plan(["flex"], 100) == [("flex", 100)]
    assert Stride(WEIGHTS).plan([], 100) == []


def test_planning_counts_nothing_until_jobs_are_served() -> None:
    stride = Stride(WEIGHTS)
    stride.plan(["priority", "flex"], 17)
    assert stride.passes() == {"priority": 0.0, "default": 0.0, "flex": 0.0}
    stride.served("flex", 2)
    stride.served("priority", 8)
    assert stride.passes() == {"priority": 0.5, "default": 0.0, "flex": 2.0}


def test_a_light_tier_is_never_starved_by_a_steady_heavy_one() -> None:
    stride = Stride(WEIGHTS)
    order = _one_by_one(stride, ["priority", "flex"], 1700)
    assert Counter(order) == {"priority": 1600, "flex": 100}
    gaps = [i for i, name in enumerate(order) if name == "flex"]
    assert max(b - a for a, b in zip(gaps, gaps[1:], strict=False)) == 17


def test_a_tier_back_from_idle_banks_no_credit() -> None:
    stride = Stride(WEIGHTS)
    _one_by_one(stride, ["priority", "default"], 200)  # flex idle meanwhile
    # Had flex kept its pass of 0 it would take the next ~10 slots alone; it starts at the
    # lowest pass of the others instead, and gets its share from there.
    order = _one_by_one(stride, ["priority", "default", "flex"], 21)
    assert Counter(order) == {"priority": 16, "default": 4, "flex": 1}
    assert stride.passes()["flex"] >= min(stride.passes()["priority"], stride.passes()["default"])


def test_a_tier_idle_for_a_moment_keeps_what_it_owes() -> None:
    stride = Stride(WEIGHTS)
    stride.plan(["priority", "flex"], 1)
    stride.served("flex", 5)  # flex ran ahead of its share: pass 5, priority's 0
    stride.plan(["priority"], 1)  # flex had nothing waiting for a moment
    stride.served("priority", 16)  # priority's pass is now 1
    # Flex is still 4 passes ahead: priority catches up (64 jobs of 1/16) before flex's turn.
    assert stride.plan(["priority", "flex"], 64) == [("priority", 64)]
    assert dict(stride.plan(["priority", "flex"], 66)) == {"priority": 65, "flex": 1}


def test_when_every_tier_was_idle_all_start_again_level() -> None:
    stride = Stride(WEIGHTS)
    stride.plan(["flex"], 1)
    stride.served("flex", 50)
    stride.plan([], 0)
    assert dict(stride.plan(["priority", "flex"], 17)) == {"priority": 16, "flex": 1}


@pytest.mark.parametrize("weights", [{"priority": 0, "flex": 1}, {}])
def test_weights_below_one_are_refused(weights: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Stride(weights)

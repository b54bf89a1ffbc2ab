"""A place in the queue: exact up to 100, then the coarse step below it; its ETA from the exact
count and the rate at which the user's requests ended."""

import pytest

from services.api.submission.reads import PLACE_COUNTED, place_of


@pytest.mark.parametrize(
    ("ahead", "position"),
    [
        (0, 1),
        (99, 100),
        (100, 100),
        (150, 100),
        (199, 200),
        (750, 500),
        (1_999, 2_000),
        (4_321, 2_000),
        (PLACE_COUNTED, 10_000),
    ],
)
def test_positions_past_one_hundred_read_as_coarse_steps(ahead: int, position: int) -> None:
    assert place_of(ahead, 60)[0] == position


def test_the_eta_is_the_exact_place_over_the_rate_and_none_without_one() -> None:
    assert place_of(149, 60) == (100, 150)  # 150 ahead of it, one a second: 150 s
    assert place_of(0, 0) == (1, None)

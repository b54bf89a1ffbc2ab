"""The failed-authentication throttle's window and addresses, on a clock the test moves."""

import pytest

from services.api.auth.throttle import FailureThrottle, address_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_until_the_window_of_its_first_failure_ends() -> None:
    clock = Clock()
    throttle = FailureThrottle(per_window=3, window_s=60, timer=clock)
    client = ("203.0.113.7", 50000)
    for _ in range(2):
        throttle.failed(client)
        assert throttle.retry_after(client) is None
    clock.now += 10
    throttle.failed(client)
    assert throttle.retry_after(client) == 50
    clock.now += 49.5
    assert throttle.retry_after(client) == 1
    clock.now += 0.5
    assert throttle.retry_after(client) is None
    throttle.failed(client)  # a new window, with one failure
    assert throttle.retry_after(client) is None


def test_addresses_count_apart_but_an_ipv6_host_is_its_64() -> None:
    throttle = FailureThrottle(per_window=2, timer=Clock())
    for client in (("2001:db8:1:2::1", 1), ("2001:db8:1:2:ffff::9", 2)):
        throttle.failed(client)
    assert throttle.retry_after(("2001:db8:1:2::abc", 3)) is not None
    assert throttle.retry_after(("2001:db8:1:3::1", 3)) is None
    assert throttle.retry_after(("198.51.100.1", 3)) is None


@pytest.mark.parametrize(
    ("client", "key"),
    [
        (("198.51.100.1", 1), "198.51.100.1"),
        (("::ffff:198.51.100.1", 1), "198.51.100.1"),
        (("2001:db8::1", 1), "2001:db8::/64"),
        (("testclient", 1), "testclient"),
        (None, "unknown"),
    ],
)
def test_address_keys(client: tuple[str, int] | None, key: str) -> None:
    assert address_key(client) == key


def test_zero_turns_it_off() -> None:
    throttle = FailureThrottle(per_window=0, timer=Clock())
    for _ in range(100):
        throttle.failed(("198.51.100.1", 1))
    assert throttle.retry_after(("198.51.100.1", 1)) is None


def test_memory_stays_bounded_whatever_the_addresses() -> None:
    throttle = FailureThrottle(per_window=5, maxsize=10, timer=Clock())
    for n in range(1000):
        throttle.failed((f"10.0.{n // 256}.{n % 256}", 1))
    assert len(throttle._windows) == 10

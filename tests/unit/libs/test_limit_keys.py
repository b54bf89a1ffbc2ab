"""The limits' key layout: each key of an integration is the prefix, its name and one part, the
rule by which scripts that read names from Redis (recon's budgets) build its keys from the parts
they are given."""

import pytest

from libs.contracts import limits
from libs.contracts.tiers import TIERS
from services.worker._limits import limits_of
from services.worker.job import HandlerError

NAME = "openai"


@pytest.mark.parametrize(
    ("key", "part"),
    [
        (limits.leases_key(NAME), limits.LEASES),
        (limits.held_key(NAME), limits.HELD),
        (limits.users_key(NAME), limits.USERS),
        (limits.conf_key(NAME), limits.CONF),
        (limits.wait_key(NAME, "u1"), limits.WAIT + "u1"),
        (limits.spent_key(NAME, 42), limits.SPENT + "42"),
    ],
)
def test_every_key_of_an_integration_is_the_prefix_its_name_and_a_part(key: str, part: str) -> None:
    assert key == limits.LIMITS_PREFIX + NAME + part


def test_the_heads_are_those_of_the_whole_keys() -> None:
    assert limits.wait_key(NAME, "u1") == limits.wait_prefix(NAME) + "u1"
    assert limits.spent_key(NAME, 7) == limits.spent_prefix(NAME) + "7"


def test_an_integration_named_like_a_shared_key_does_not_touch_it() -> None:
    shared = {limits.LIMITS_ACTIVE_KEY, limits.LIMITS_KNOWN_KEY, limits.LIMITS_LIVE_KEY}
    for name in ("active", "known", "live"):
        keys = {
            limits.leases_key(name),
            limits.held_key(name),
            limits.users_key(name),
            limits.conf_key(name),
            limits.wait_key(name, ""),
            limits.spent_key(name, 0),
        }
        assert not keys & shared


def test_the_layout_is_the_one_redis_holds_today() -> None:
    assert limits.leases_key(NAME) == "relai:limits:openai:leases"
    assert limits.wait_key(NAME, "u1") == "relai:limits:openai:wait:u1"
    assert limits.spent_key(NAME, 42) == "relai:limits:openai:spent:42"
    assert limits.LIMITS_KNOWN_KEY == "relai:limits:known"


def test_each_tier_has_a_queue_no_integration_can_share() -> None:
    assert limits.tier_queue("default") == limits.FAIR_QUEUE == "@fair"
    assert limits.tier_queue("priority") == "@priority"
    assert limits.tier_queue("flex") == "@flex"
    assert set(limits.TIER_QUEUES) == set(TIERS)
    assert {limits.QUEUE_TIERS[limits.tier_queue(tier)] for tier in TIERS} == set(TIERS)
    for tier in TIERS:
        with pytest.raises(HandlerError, match="integration must be a name"):
            limits_of({"integration": limits.tier_queue(tier), "max_concurrency": 1})

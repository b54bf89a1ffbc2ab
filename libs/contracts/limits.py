"""The Redis keys of the limits that workers share per integration (``openai``, ...): the one
place they are named. Worker and recon scripts get every key from here, whole in ``KEYS`` or, for
the keys a script finds its way to (a user's queue, a window's counter, the integrations listed in
a set), as the parts below in ``ARGV``.

Per integration, each key is ``LIMITS_PREFIX + integration + part``:

- ``LEASES``: zset, lease id → expiry (ms); the jobs running, one lease each;
- ``HELD``: hash, lease id → ``{user}\\n{job}``, the job a lease runs (put back if it expires);
- ``USERS``: list, the users with waiting jobs, in round-robin order;
- ``WAIT`` + user: list, that user's waiting jobs;
- ``RUNNING`` + user: zset, lease id → expiry (ms): the leases of that user's jobs, so that a
  cap per user counts only the live ones;
- ``TURNS``: hash, user → jobs taken in a row in their current turn (users of weight > 1);
- ``CONF``: hash of ``CONF_MAX`` (concurrency), ``CONF_BUDGET`` (credits per window) and
  ``CONF_WINDOW`` (ms), as the last parked job gave them;
- ``SPENT`` + window index (``now_ms // window``): credits spent in that window.
"""

from libs.contracts.tiers import DEFAULT_TIER, Tier

LIMITS_PREFIX = "relai:limits:"
"""``relai:limits:{integration}{part}``: shared leases, budgets and waiting jobs per integration."""

LIMITS_ACTIVE_KEY = f"{LIMITS_PREFIX}active"
"""Set of the integrations with jobs waiting: where workers look for jobs to take."""

LIMITS_KNOWN_KEY = f"{LIMITS_PREFIX}known"
"""Set of every integration a job has waited under: where recon looks for budgets to watch (each
one's ``CONF`` hash and ``SPENT`` counter)."""

LIMITS_LIVE_KEY = f"{LIMITS_PREFIX}live"
"""Set of the request ids whose job waits for, or runs under, an integration's limits: in
flight although no stream holds them."""

LIMITS_WEIGHTS_KEY = f"{LIMITS_PREFIX}weights"
"""Hash of the users whose weight is not 1, user id → weight: under fair scheduling, how many of
a user's jobs are taken per turn (a mirror of ``users.weight``, rebuilt by recon)."""

FAIR_QUEUE = "@fair"
"""The queue every job without an integration that asks for the ``default`` tier waits in under
fair scheduling (``RELAI_WORKER_SCHEDULING=fair``): its users are served round-robin like an
integration's, with neither a concurrency cap nor a budget. Not a valid integration name, so no
offer can share it."""

PRIORITY_QUEUE = "@priority"
"""Where a job asking for the ``priority`` tier waits under fair scheduling, as in ``FAIR_QUEUE``;
workers take the tiers' queues by weight (see ``services.worker._stride``)."""

FLEX_QUEUE = "@flex"
"""Where a job asking for the ``flex`` tier waits under fair scheduling, as in ``FAIR_QUEUE``."""

TIER_QUEUES: dict[Tier, str] = {
    "flex": FLEX_QUEUE,
    DEFAULT_TIER: FAIR_QUEUE,
    "priority": PRIORITY_QUEUE,
}
"""Each tier's queue. None is a valid integration name (``@`` is neither a letter nor a digit)."""

QUEUE_TIERS: dict[str, Tier] = {queue: tier for tier, queue in TIER_QUEUES.items()}
"""The tier whose jobs a queue holds, for the tiers' queues only."""

LEASES = ":leases"
HELD = ":held"
USERS = ":users"
WAIT = ":wait:"
RUNNING = ":running:"
TURNS = ":turns"
CONF = ":conf"
SPENT = ":spent:"

CONF_MAX = "max"
CONF_BUDGET = "budget"
CONF_WINDOW = "window"


def tier_queue(tier: Tier) -> str:
    """The queue a job asking for ``tier`` waits in under fair scheduling."""
    return TIER_QUEUES[tier]


def leases_key(integration: str) -> str:
    return f"{LIMITS_PREFIX}{integration}{LEASES}"


def held_key(integration: str) -> str:
    return f"{LIMITS_PREFIX}{integration}{HELD}"


def users_key(integration: str) -> str:
    return f"{LIMITS_PREFIX}{integration}{USERS}"


def wait_prefix(integration: str) -> str:
    """The head of every waiting list of ``integration``: a user's is this and the user."""
    return f"{LIMITS_PREFIX}{integration}{WAIT}"


def wait_key(integration: str, user: str) -> str:
    return f"{wait_prefix(integration)}{user}"


def running_prefix(integration: str) -> str:
    """The head of every user's running set of ``integration``: a user's is this and the user."""
    return f"{LIMITS_PREFIX}{integration}{RUNNING}"


def running_key(integration: str, user: str) -> str:
    return f"{running_prefix(integration)}{user}"


def turns_key(integration: str) -> str:
    return f"{LIMITS_PREFIX}{integration}{TURNS}"


def conf_key(integration: str) -> str:
    return f"{LIMITS_PREFIX}{integration}{CONF}"


def spent_prefix(integration: str) -> str:
    """The head of every spending counter of ``integration``: a window's is this and its index."""
    return f"{LIMITS_PREFIX}{integration}{SPENT}"


def spent_key(integration: str, window_index: int) -> str:
    return f"{spent_prefix(integration)}{window_index}"

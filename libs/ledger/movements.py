"""The credit movements, as SQL that the single-statement writes compose.

Every movement is one ``credit_ledger`` row and, in the same statement, the change it makes to
its user's ``balance`` and ``reserved``:

=========  =========  ==========  ==============================================================
kind       balance    reserved    when
=========  =========  ==========  ==============================================================
grant      + amount               credits given to a user
reserve    - amount   + amount    a request is accepted: its most it can cost is set aside
settle                - amount    what a request delivered is spent
release    + amount   - amount    the part of a delivered request's reservation it did not cost
refund     + amount   - amount    a request (or a deal's step) that was not delivered
=========  =========  ==========  ==============================================================

so that, for every user, ``balance = grant - reserve + release + refund`` and
``reserved = reserve - settle - release - refund`` (``tests/integration/libs`` checks it).

The fragments below are CTEs (``name AS (...)``) to splice into a ``WITH`` list. A *source* is a
CTE or subquery whose rows name movements: ``user_id, request_id, step, kind, amount``.
"""

from __future__ import annotations

# What a movement does to the balance and to the reservation (the table above).
_BALANCE = "CASE kind WHEN 'reserve' THEN -amount WHEN 'settle' THEN 0 ELSE amount END"
_RESERVED = "CASE kind WHEN 'reserve' THEN amount WHEN 'grant' THEN 0 ELSE -amount END"


def apply(source: str, *, name: str = "ledger", locked: bool = False) -> str:
    """CTEs that apply every movement of ``source``: its users are locked in id order (so that
    concurrent statements cannot deadlock on each other), their balances moved once each, and
    one ledger row written per movement. ``locked``: the statement has locked those users in id
    order already (``affordable`` does). ``name`` prefixes the CTEs' names (two applications in
    one statement need two names)."""
    lock = (
        ""
        if locked
        else f""", {name}_locked AS (
    SELECT u.id FROM users u JOIN {name}_money m ON m.user_id = u.id ORDER BY u.id FOR UPDATE OF u
)"""
    )
    only_locked = "" if locked else f" AND u.id IN (SELECT id FROM {name}_locked)"
    return f"""{name}_money AS (
    SELECT user_id, sum({_BALANCE}) AS balance, sum({_RESERVED}) AS reserved
    FROM {source} GROUP BY user_id
){lock}, {name}_balances AS (
    UPDATE users u SET balance = u.balance + m.balance, reserved = u.reserved + m.reserved
    FROM {name}_money m WHERE u.id = m.user_id{only_locked}
    RETURNING u.id, u.balance, u.reserved
), {name}_rows AS (
    INSERT INTO credit_ledger (user_id, request_id, step, kind, amount)
    SELECT user_id, request_id, step, kind, amount FROM {source}
)"""


def ending(source: str, *, spent: str = "NULL") -> str:
    """A subquery: the movements that end the reservations of ``source``'s rows (``user_id,
    request_id, step, status, price``; ``e`` in expressions). This is the one place that decides
    what an ending costs: what it ``spent`` (an expression, at most the price; when NULL, the
    whole price for a success and nothing otherwise) is settled, and the rest goes back to the
    balance: released after a success, refunded after any other ending."""
    return f"""(
    SELECT e.user_id, e.request_id, e.step, m.kind, m.amount
    FROM {source} e,
    LATERAL (SELECT least(coalesce({spent}, CASE WHEN e.status = 'succeeded' THEN e.price
                                                 ELSE 0 END), e.price) AS cost) c,
    LATERAL (VALUES
        ('settle', CASE WHEN e.status = 'succeeded' OR c.cost > 0 THEN c.cost END),
        ('release', CASE WHEN e.status = 'succeeded' AND c.cost < e.price
                         THEN e.price - c.cost END),
        ('refund', CASE WHEN e.status <> 'succeeded' AND c.cost < e.price
                        THEN e.price - c.cost END)
    ) AS m(kind, amount)
    WHERE m.amount IS NOT NULL
)"""


def reserve_or_abort(*, request: str, user: str, amount: str, name: str = "reserve") -> str:
    """CTEs that reserve ``amount`` of ``user``'s balance for the one request ``request`` (a CTE
    of zero or one row with an ``id``) and write its ledger row. When the balance is short, the
    ledger row gets a NULL user: the NOT NULL violation aborts the whole statement, so nothing
    of it is written (``short_balance`` tells that error apart). No row in ``request`` (a
    duplicate) reserves nothing."""
    return f"""{name}_charge AS (
    UPDATE users SET balance = balance - {amount}, reserved = reserved + {amount}
    WHERE id = {user} AND balance >= {amount} AND EXISTS (SELECT 1 FROM {request})
    RETURNING id
), {name}_rows AS (
    INSERT INTO credit_ledger (user_id, request_id, kind, amount)
    SELECT (SELECT id FROM {name}_charge), {request}.id, 'reserve', {amount} FROM {request}
)"""


def affordable(source: str, *, name: str) -> str:
    """CTEs ending in ``name``: the rows of ``source`` (``user_id``, ``price`` and an arrival
    order ``ord``) that their users' balances cover, in arrival order per user; the users are
    locked (in id order) until the statement's transaction ends. Reserve them with ``apply``."""
    return f"""{name}_wallets AS (
    SELECT u.id, u.balance FROM users u
    WHERE u.id IN (SELECT user_id FROM {source})
    ORDER BY u.id FOR UPDATE
), {name} AS (
    SELECT f.* FROM (
        SELECT *, sum(price) OVER (PARTITION BY user_id ORDER BY ord) AS running FROM {source}
    ) f JOIN {name}_wallets w ON w.id = f.user_id
    WHERE f.running <= w.balance
)"""

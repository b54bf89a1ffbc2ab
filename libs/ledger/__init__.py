"""The only code that moves credits: reserve, settle, release, refund and grant, each a ledger
row and its balance change in one statement. Writes that must stay one statement (a submit, an
outcome) splice in the SQL of ``movements``; the rest call the functions here."""

from libs.ledger import history, movements
from libs.ledger.account import (
    ShortBalance,
    apply_moves,
    grant,
    lock_wallet,
    refunded,
    short_balance,
)

__all__ = [
    "ShortBalance",
    "apply_moves",
    "grant",
    "history",
    "lock_wallet",
    "movements",
    "refunded",
    "short_balance",
]

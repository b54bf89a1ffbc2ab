from enum import StrEnum


class RequestStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    """Its results were kept for the offer's ``expiration`` and have been purged."""
    CANCELLED = "cancelled"
    """Its owner cancelled it before it ended; what it had reserved was refunded."""


FINAL_STATUSES = frozenset(
    {
        RequestStatus.SUCCEEDED,
        RequestStatus.FAILED,
        RequestStatus.CANCELLED,
        RequestStatus.EXPIRED,
    }
)

_RANK = {
    RequestStatus.PENDING: 0,
    RequestStatus.RUNNING: 1,
    RequestStatus.SUCCEEDED: 2,
    RequestStatus.FAILED: 2,
    RequestStatus.CANCELLED: 2,
    RequestStatus.EXPIRED: 3,
}


def status_rank(status: RequestStatus) -> int:
    """Order of the lifecycle: a state never moves to a lower rank."""
    return _RANK[status]

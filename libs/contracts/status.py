from enum import StrEnum


class RequestStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.CANCELLED})

_RANK = {
    RequestStatus.PENDING: 0,
    RequestStatus.RUNNING: 1,
    RequestStatus.SUCCEEDED: 2,
    RequestStatus.FAILED: 2,
    RequestStatus.CANCELLED: 2,
}


def status_rank(status: RequestStatus) -> int:
    """Order of the lifecycle: a state never moves to a lower rank."""
    return _RANK[status]

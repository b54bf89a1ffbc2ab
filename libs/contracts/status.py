from enum import StrEnum


class RequestStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINAL_STATUSES = frozenset({RequestStatus.SUCCEEDED, RequestStatus.FAILED})

_RANK = {
    RequestStatus.PENDING: 0,
    RequestStatus.RUNNING: 1,
    RequestStatus.SUCCEEDED: 2,
    RequestStatus.FAILED: 2,
}


def status_rank(status: RequestStatus) -> int:
    """Order of the lifecycle: a state never moves to a lower rank."""
    return _RANK[status]

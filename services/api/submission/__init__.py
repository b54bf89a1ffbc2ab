"""The one submission core every front door submits through (``service.Submitter``)."""

from services.api.submission.pricing import priced
from services.api.submission.repository import steps_of
from services.api.submission.rules import (
    check_string_fields,
    derive_request_id,
    idempotency_key,
    new_traceparent,
    valid_traceparent,
)
from services.api.submission.schemas import (
    SUBMIT_ERRORS,
    SUBMIT_HEADERS,
    Links,
    StepView,
    Submitted,
    links_for,
)
from services.api.submission.service import Job, Order, Submission, Submitter

__all__ = [
    "SUBMIT_ERRORS",
    "SUBMIT_HEADERS",
    "Job",
    "Links",
    "Order",
    "StepView",
    "Submission",
    "Submitted",
    "Submitter",
    "check_string_fields",
    "derive_request_id",
    "idempotency_key",
    "links_for",
    "priced",
    "steps_of",
    "new_traceparent",
    "valid_traceparent",
]

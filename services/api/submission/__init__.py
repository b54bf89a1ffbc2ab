"""The one submission core every front door submits through (``service.Submitter``)."""

from services.api.submission.orders import offer_order
from services.api.submission.pricing import (
    charged_when_cancelled_streaming,
    priced,
    request_texts,
    tier_of,
)
from services.api.submission.repository import steps_of
from services.api.submission.rules import (
    check_string_fields,
    derive_request_id,
    idempotency_key,
    new_traceparent,
    valid_traceparent,
)
from services.api.submission.schemas import (
    OFFER_SUBMIT_HEADERS,
    SUBMIT_ERRORS,
    SUBMIT_HEADERS,
    TIER_HEADER,
    Links,
    StepView,
    Submitted,
    links_for,
)
from services.api.submission.service import Job, Order, Submission, SubmittedFile, Submitter
from services.api.webhooks.urls import WEBHOOK_URL_HEADER

__all__ = [
    "OFFER_SUBMIT_HEADERS",
    "SUBMIT_ERRORS",
    "SUBMIT_HEADERS",
    "TIER_HEADER",
    "WEBHOOK_URL_HEADER",
    "Job",
    "Links",
    "Order",
    "StepView",
    "Submission",
    "Submitted",
    "SubmittedFile",
    "Submitter",
    "charged_when_cancelled_streaming",
    "check_string_fields",
    "derive_request_id",
    "idempotency_key",
    "links_for",
    "offer_order",
    "steps_of",
    "new_traceparent",
    "priced",
    "request_texts",
    "tier_of",
    "valid_traceparent",
]

"""``GET /admin/usage``: what users spent, and what it cost the operator, per hour, offer,
handler and integration (aggregated by recon from ended requests; see ``services.recon.usage``).
Admin role only (403)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator

from services.api.admin.dependencies import ADMIN_ONLY, AdminUser
from services.api.deps import PoolDep

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ONLY)

_USAGE = """
SELECT u.hour, us.name AS user, u.offer, u.handler_id AS handler, u.integration, u.model,
       u.requests,
       u.succeeded, u.failed, u.credits, u.cost, u.input_tokens, u.output_tokens
FROM usage_hourly u JOIN users us ON us.id = u.user_id
WHERE u.hour >= coalesce($1::timestamptz, '-infinity')
  AND u.hour < coalesce($2::timestamptz, 'infinity')
  AND ($3::text IS NULL OR us.name = $3) AND ($4::text IS NULL OR u.handler_id = $4)
  AND ($5::text IS NULL OR u.integration = $5) AND ($6::text IS NULL OR u.offer = $6)
  AND ($8::text IS NULL OR u.model = $8)
ORDER BY u.hour DESC, us.name, u.offer, u.handler_id, u.integration, u.model
LIMIT $7
"""


def _not_a_number(value: Any) -> Any:
    # pydantic reads a number as a Unix time; the document promises an ISO 8601 date-time.
    try:
        float(value)
    except (TypeError, ValueError):
        return value
    raise ValueError("expected an ISO 8601 date-time such as 2025-01-31T12:00:00Z")


IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]


class UsageRow(BaseModel):
    hour: datetime
    user: str
    offer: str
    """``service/action``; a deal's step counts under its own offer."""
    handler: str
    integration: str
    """The deployment that answered a request of a model; else the handler's (or offer's)
    ``params.integration``; empty when it names none."""
    model: str
    """``name@version`` of the model a request was routed to; empty for other offers."""
    requests: int
    succeeded: int
    """Ended with a charge (delivered)."""
    failed: int
    """Ended without one: failed, cancelled, or expired before delivery (refunded)."""
    credits: int
    """Credits settled: what the users were charged."""
    cost: int
    """What the delivered requests cost the operator: their handlers' ``credits``."""
    input_tokens: int
    output_tokens: int


@router.get("/usage", response_model=list[UsageRow])
async def usage(
    _: AdminUser,
    pool: PoolDep,
    since: Annotated[IsoDatetime | None, Query(alias="from")] = None,
    until: Annotated[IsoDatetime | None, Query(alias="to")] = None,
    user: Annotated[str | None, Query(max_length=200)] = None,
    handler: Annotated[str | None, Query(max_length=200)] = None,
    integration: Annotated[str | None, Query(max_length=200)] = None,
    offer: Annotated[str | None, Query(max_length=200)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    """Hourly rows, newest first, filtered by time (``from`` inclusive, ``to`` exclusive), user
    name, handler, integration, offer (``service/action``) and model (``name@version``). Recon
    folds a request in a few seconds after it ends."""
    rows = await pool.fetch(_USAGE, since, until, user, handler, integration, offer, limit, model)
    return [dict(r) for r in rows]

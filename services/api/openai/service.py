"""What the OpenAI-compatible door asks of the core: the offers its clients call ``model``, and
the Relai request every call becomes, submitted through the one submission core.

Model ids are offers' ``service/action``, and the aliases the catalog gives them (names without
a ``/``). An offer whose prompt template takes one variable is a chat model: the conversation's
last (user) turn fills it, and the turns go to the handler with it. An offer of one variable
whose handler's method is ``embeddings`` is an embedding model. An offer that requires a file
input is neither: this door sends text only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request

from libs.contracts import RequestStatus
from libs.contracts.tiers import DEFAULT_TIER
from services.api import submission
from services.api.auth.service import Principal
from services.api.catalog.service import Offer, OfferCatalog
from services.api.errors import BadRequest, NotFound
from services.api.state import app_state
from services.api.submission import Job, Order, Submission


class ModelNotFound(NotFound):
    code = "model_not_found"


EMBEDDING_METHODS = frozenset({"embeddings"})
RETRIED = frozenset({RequestStatus.FAILED, RequestStatus.EXPIRED, RequestStatus.CANCELLED})
"""What a call without an ``Idempotency-Key`` runs again rather than answers with: a client
retrying a failed call wants a new attempt, and the failed one charged nothing."""
_MAX_RERUNS = 20


def _one_input(offer: Offer) -> bool:
    """One variable, and no file input required (this door sends text only)."""
    return len(offer.template.variables) == 1 and not offer.required_files


def is_embedding(offer: Offer) -> bool:
    return _one_input(offer) and offer.handler.rpartition(".")[2] in EMBEDDING_METHODS


def is_chat(offer: Offer) -> bool:
    return _one_input(offer) and not is_embedding(offer)


def model_id(offer: Offer) -> str:
    return f"{offer.service}/{offer.action}"


def model_names(offer: Offer) -> tuple[str, ...]:
    """Every name the offer is a model by: its ``service/action``, then its aliases."""
    return (model_id(offer), *offer.aliases)


async def models(catalog: OfferCatalog) -> list[Offer]:
    return [o for o in await catalog.list_offers() if is_chat(o) or is_embedding(o)]


async def named(catalog: OfferCatalog, name: str) -> Offer | None:
    """The enabled offer ``name`` names: ``service/action``, or one of its aliases."""
    if "/" not in name:
        return await catalog.by_alias(name)
    service, _, action = name.partition("/")
    return await catalog.get(service, action) if service and action else None


async def model(catalog: OfferCatalog, name: str, *, embedding: bool = False) -> Offer:
    """The offer a client names as ``model``; 404 (``model_not_found``) when there is no such
    enabled chat (or embedding) model. Under an alias, the request is the one its
    ``service/action`` names."""
    offer = await named(catalog, name)
    if offer is None or not (is_embedding(offer) if embedding else is_chat(offer)):
        kind = "embedding model" if embedding else "chat model"
        raise ModelNotFound(
            f"the {kind} {name!r} does not exist; GET /v1/models lists them", param="model"
        )
    return offer


def chat_order(
    offer: Offer,
    messages: list[dict[str, str]],
    options: dict[str, Any],
    *,
    max_output_tokens: int | None,
    tier: str | None = None,
) -> Order:
    """The conversation as a request to ``offer`` at ``tier`` (``service_tier``): its last turn
    rendered by the offer's template is the prompt (and that turn's content), at the price the
    core sets for it."""
    (variable,) = offer.template.variables
    chosen = submission.tier_of(offer, tier)
    last = messages[-1]["content"]
    prompt = offer.template.render({variable: last})
    turns = [*messages[:-1], {"role": "user", "content": prompt}]
    price, pricing = submission.priced(
        offer,
        input_texts=[t["content"] for t in turns],
        max_output_tokens=max_output_tokens,
        percent=chosen.percent,
    )
    cap = max_output_tokens if max_output_tokens is not None else offer.max_output_tokens
    if cap is not None:
        # The provider never writes more than was asked for (and reserved).
        options = {**options, "max_tokens": cap}
    return Order(
        name=model_id(offer),
        handler=offer.handler,
        key=(str(offer.id), "chat", turns, options)
        + ((chosen.tier,) if chosen.tier != DEFAULT_TIER else ()),
        inputs={variable: last},
        price=price,
        jobs=(Job(offer, prompt, price, messages=turns, options=options),),
        offer_id=offer.id,
        pricing=pricing,
        tier=chosen.tier,
        tier_percent=chosen.percent,
    )


def embedding_order(offer: Offer, text: str) -> Order:
    (variable,) = offer.template.variables
    return submission.offer_order(offer, {variable: text})


async def submit(request: Request, user: Principal, order: Order) -> Submission:
    """Submit ``order`` as the caller's request. The same body names the same request (so a
    retried call runs and charges once), unless that request failed, expired or was cancelled
    and the caller sent no ``Idempotency-Key``: then it runs again, as a new request chained to
    the last (the same retry finds the same new one)."""
    state = app_state(request)
    key = submission.idempotency_key(request.headers.get("idempotency-key"))
    traceparent = request.headers.get("traceparent")
    webhook_url = request.headers.get(submission.WEBHOOK_URL_HEADER)
    done = await state.submitter.submit(
        user=user,
        order=order,
        idempotency_key=key,
        traceparent=traceparent,
        webhook_url=webhook_url,
    )
    for _ in range(_MAX_RERUNS):
        if key is not None or not done.duplicate or done.status not in RETRIED:
            break
        done = await state.submitter.submit(
            user=user,
            order=order,
            idempotency_key=f"rerun:{done.id}",
            traceparent=traceparent,
            webhook_url=webhook_url,
        )
    return done


def request_id(value: str, prefix: str) -> uuid.UUID:
    """A Relai request id from an id this door gave (``resp_<hex>``) or a bare one."""
    raw = value.removeprefix(prefix)
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no such {prefix.rstrip('_-') or 'request'}: {value!r}") from None


def text_of(results: Sequence[Any] | None) -> list[str]:
    """The results as the texts of the answer's choices."""
    if not results:
        raise BadRequest("the request has no results")
    return [r if isinstance(r, str) else str(r) for r in results]

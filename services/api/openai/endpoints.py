"""The OpenAI-compatible door, ``/v1``: models, chat completions, responses (background mode
included) and embeddings, for the official ``openai`` SDKs and every client that speaks their
API (``base_url="https://<relai>/v1"``, a Relai API key as ``api_key``).

Every call is a durable Relai request, submitted through the one submission core: in Postgres
before any answer, charged once, at ``/svc/request/{id}`` and on ``/ws`` like any other (a
``chatcmpl-<hex>`` or ``resp_<hex>`` id is the request's id in hex)."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from libs.contracts import RequestStatus
from services.api.auth.dependencies import CurrentUser
from services.api.auth.service import Principal
from services.api.catalog.schemas import model_info
from services.api.catalog.service import Offer
from services.api.deps import CatalogDep
from services.api.errors import BadRequest, Conflict, NotFound
from services.api.openai import completions, responses, service
from services.api.openai.follow import Final, StillRunning, follow
from services.api.openai.schemas import (
    ChatCompletionBody,
    EmbeddingBody,
    ResponseBody,
    chat_messages,
)
from services.api.state import app_state
from services.api.submission import reads as repository
from services.api.submission.cancel import cancel

# Not in /openapi.json: its reference is OpenAI's own (docs/openai.md says what differs), and its
# errors have OpenAI's shape, not the one the document declares.
router = APIRouter(prefix="/v1", tags=["openai"], include_in_schema=False)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _model(offer: Offer, name: str) -> dict[str, Any]:
    """OpenAI's model object; for an offer of a model, also the version it is routed to, its
    context window and its output limit (``model_info``)."""
    created = offer.created_at
    info = model_info(offer)
    return {
        "id": name,
        "object": "model",
        "created": 0 if created is None else int(created.timestamp()),
        "owned_by": offer.service,
        **({"model_info": info.model_dump()} if info is not None else {}),
    }


@router.get("/models")
async def list_models(_: CurrentUser, catalog: CatalogDep) -> dict[str, Any]:
    """The chat and embedding models: enabled offers, by ``service/action`` and by each of
    their aliases."""
    data = [
        _model(offer, name)
        for offer in await service.models(catalog)
        for name in service.model_names(offer)
    ]
    return {"object": "list", "data": data}


async def _one_model(catalog: CatalogDep, name: str) -> dict[str, Any]:
    offer = await service.named(catalog, name)
    if offer is None or not (service.is_chat(offer) or service.is_embedding(offer)):
        raise service.ModelNotFound(f"the model {name!r} does not exist", param="model")
    return _model(offer, name)


@router.get("/models/{model_id}")
async def get_model_by_alias(model_id: str, _: CurrentUser, catalog: CatalogDep) -> dict[str, Any]:
    return await _one_model(catalog, model_id)


@router.get("/models/{service_name}/{action}")
async def get_model(
    service_name: str, action: str, _: CurrentUser, catalog: CatalogDep
) -> dict[str, Any]:
    return await _one_model(catalog, f"{service_name}/{action}")


async def _final(request: Request, user: Principal, request_id: Any) -> Final:
    """The request's end, waited for (at most ``RELAI_OPENAI_WAIT_S``: then a 504 whose
    retry waits again for the same request)."""
    state = app_state(request)
    items = follow(
        state.pool,
        state.redis,
        state.hub,
        request_id,
        user.id,
        wait_s=state.settings.openai_wait_s,
        chunks=False,
    )
    try:
        async for item in items:
            if isinstance(item, Final):
                return item
    except StillRunning:
        pass
    raise completions.StillRunningError(
        f"the request {request_id} is still running; retry to keep waiting, or read it at "
        f"/svc/request/{request_id}"
    )


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionBody, request: Request, user: CurrentUser, catalog: CatalogDep
) -> JSONResponse | StreamingResponse:
    """A chat completion, streamed (``stream: true``: server-sent events ending with
    ``data: [DONE]``) or answered once the request has ended."""
    body.refuse_unsupported()
    offer = await service.model(catalog, body.model)
    order = service.chat_order(
        offer,
        chat_messages(body),
        body.options(),
        max_output_tokens=body.output_tokens,
        tier=body.service_tier,
    )
    done = await service.submit(request, user, order)
    if not body.stream:
        final = await _final(request, user, done.id)
        if final.status is not RequestStatus.SUCCEEDED:
            raise completions.ending_error(final)
        return JSONResponse(completions.completion(final, body.model))
    state = app_state(request)
    items = follow(
        state.pool, state.redis, state.hub, done.id, user.id, wait_s=state.settings.openai_wait_s
    )
    stream = completions.chunks(
        items,
        request_id=done.id,
        model=body.model,
        created=int(time.time()),
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post("/responses", response_model=None)
async def create_response(
    body: ResponseBody, request: Request, user: CurrentUser, catalog: CatalogDep
) -> JSONResponse | StreamingResponse:
    """A response: with ``background: true``, answered at once (status ``queued``) and read
    with ``GET /v1/responses/{id}``; otherwise answered once the request has ended, or streamed
    (``stream: true``)."""
    body.refuse_unsupported()
    offer = await service.model(catalog, body.model)
    order = service.chat_order(
        offer,
        body.messages(),
        body.options(),
        max_output_tokens=body.max_output_tokens,
        tier=body.service_tier,
    )
    done = await service.submit(request, user, order)
    state = app_state(request)
    if body.stream:
        return await _stream(request, user, done.id, starting_after=-1, model=body.model)
    if body.background:
        row = await repository.get_view(state.pool, done.id, user.id)
        assert row is not None
        return JSONResponse(responses.response(row, background=True, model=body.model))
    final = await _final(request, user, done.id)
    return JSONResponse(responses.response(final.row, background=False, model=body.model))


async def _row(request: Request, user: Principal, response_id: str) -> Any:
    request_id = service.request_id(response_id, responses.PREFIX)
    row = await repository.get_view(app_state(request).pool, request_id, user.id)
    if row is None or row["deal_id"] is not None:
        raise NotFound(f"no such response: {response_id!r}", param="response_id")
    return row


async def _stream(
    request: Request,
    user: Principal,
    request_id: Any,
    *,
    starting_after: int,
    model: str | None = None,
) -> StreamingResponse:
    state = app_state(request)
    row = await repository.get_view(state.pool, request_id, user.id)
    assert row is not None
    items = follow(
        state.pool, state.redis, state.hub, request_id, user.id, wait_s=state.settings.openai_wait_s
    )
    stream = responses.events(row, items, starting_after=starting_after, model=model)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/responses/{response_id}", response_model=None)
async def get_response(
    response_id: str,
    request: Request,
    user: CurrentUser,
    stream: bool = False,
    starting_after: Annotated[int, Query(ge=-1)] = -1,
) -> JSONResponse | StreamingResponse:
    """The response in its current state; with ``stream=true``, its events after number
    ``starting_after`` (all of them by default), live until it ends."""
    row = await _row(request, user, response_id)
    if stream:
        return await _stream(request, user, row["id"], starting_after=starting_after)
    return JSONResponse(responses.response(row))


@router.post("/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request, user: CurrentUser) -> Any:
    """Cancel an unfinished response: it ends ``cancelled`` and what it has not delivered is
    refunded. Cancelling again answers the same; one that ended otherwise is a 400."""
    row = await _row(request, user, response_id)
    state = app_state(request)
    try:
        await cancel(state.pool, state.redis, user=user, request_id=row["id"])
    except Conflict as exc:
        raise BadRequest(
            f"the response cannot be cancelled: {exc.message}", param="response_id"
        ) from exc
    return responses.response(await _row(request, user, response_id))


def _base64(vector: Any) -> str:
    if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
        raise completions.ProviderFailed("the embedding model answered no vector of numbers")
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@router.post("/embeddings")
async def embeddings(
    body: EmbeddingBody, request: Request, user: CurrentUser, catalog: CatalogDep
) -> dict[str, Any]:
    """One embedding per input text, each its own request (the same text is the same
    request: embedded and charged once)."""
    if body.dimensions is not None:
        raise BadRequest("dimensions is not supported: the model decides", param="dimensions")
    offer = await service.model(catalog, body.model, embedding=True)
    texts = body.texts()
    orders = [service.embedding_order(offer, text) for text in texts]
    submitted = [await service.submit(request, user, order) for order in orders]
    finals = await asyncio.gather(*(_final(request, user, s.id) for s in submitted))
    data: list[dict[str, Any]] = []
    tokens = 0
    for index, final in enumerate(finals):
        if final.status is not RequestStatus.SUCCEEDED:
            raise completions.ending_error(final)
        vector = (final.row["results"] or [None])[0]
        if body.encoding_format == "base64":
            vector = _base64(vector)
        data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens += int((final.row["usage"] or {}).get("input_tokens", 0))
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }

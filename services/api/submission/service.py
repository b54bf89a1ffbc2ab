"""The one submission core. Every front door resolves what is asked, checks its inputs and
prices it (an ``Order``); the core does the rest the same way for all: derive the id, render
the jobs' tasks, write everything through the group commit (or, with an unfinished-request cap,
counted under the user's lock), and answer with the request's id, status and price (a
duplicate finds the existing request and is not charged again, nor changed). A one-off webhook
URL named at submit is held to the rules of endpoints' (``services.api.webhooks``) and written
with the request. Input files are stored before the request is written: their blobs registered,
the bytes that came with the submission put into the store, and the request's files rows
written by its submit statement (``libs.files.uploads``). It runs inside a ``relai.submit`` span
whose context is the ``traceparent`` every later message of the request carries."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics import Counter as CounterChild

from libs import outbox
from libs.blobs import BlobStore
from libs.contracts import RequestStatus
from libs.contracts.files import input_file_id
from libs.contracts.tiers import DEFAULT_TIER, Tier
from libs.db import PgPool
from libs.files import uploads
from libs.ledger import ShortBalance
from libs.logs import get_logger
from libs.security.ssrf import UrlPolicy
from libs.telemetry import current_traceparent, span
from services.api.auth.service import Principal
from services.api.catalog.service import Offer
from services.api.errors import BadRequest, InsufficientCredits, InvalidInputs, TooManyRequests
from services.api.metrics import (
    CREDITS_RESERVED,
    REQUESTS_BY_OFFER,
    SUBMISSION_ACCEPTED,
    SUBMISSION_DUPLICATE,
    SUBMISSION_REFUSED_CREDITS,
)
from services.api.submission import reads, repository
from services.api.submission.batcher import SubmitBatcher
from services.api.submission.rules import derive_request_id, new_traceparent, valid_traceparent
from services.api.webhooks.service import check_one_off_url

log = get_logger(__name__)

KEY_REUSED = (
    "this Idempotency-Key was already used for a request with other inputs; use a new key for "
    "a new request, or send the same body to get the request it made"
)


@dataclass(frozen=True, slots=True)
class Job:
    """One offer's job in an order."""

    offer: Offer
    prompt: str | None
    """None for a pipeline step after the first: it is queued when the step before it ends."""
    price: int
    """Its share of the order's price."""
    role: str = "primary"
    mode: str | None = None
    messages: list[dict[str, str]] | None = None
    """A chat request's conversation, whose last turn is ``prompt``."""
    options: dict[str, Any] | None = None
    """A chat request's sampling options, passed to the provider."""


@dataclass(frozen=True, slots=True)
class SubmittedFile:
    """An input file of an order, checked against its offer's file input (type, bytes,
    pixels)."""

    name: str
    sha256: str
    media_type: str
    size: int
    width: int | None
    height: int | None
    filename: str | None = None
    data: bytes | None = None
    """Its bytes when they came with the submission (stored before the request is written);
    None for one of the caller's files, stored already."""


@dataclass(frozen=True, slots=True)
class Order:
    """What a front door asks for, resolved, checked and priced."""

    name: str
    """What is bought, for spans, logs and metrics: ``service/action`` or ``deal/<slug>``."""
    handler: str
    """The handler of a single offer; ``deal`` for a deal."""
    key: tuple[Any, ...]
    """What, beside the user and the Idempotency-Key, names the request (``derive_request_id``)."""
    inputs: dict[str, str]
    price: int
    jobs: tuple[Job, ...]
    offer_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    """A deal's request keeps one step per job; a single offer's request is its one job."""
    pricing: dict[str, Any] | None = None
    """Per-token prices (``libs.catalog.pricing``): ``price`` is then the most the request can
    cost, and its end settles what its usage costs."""
    files: tuple[SubmittedFile, ...] = ()
    """The request's input files: each job's task carries them (``files``, by name), the
    request keeps a copy of each (``input_file_id``) and its ``inputs`` name those copies. Their
    sha256s are part of ``key``."""
    tier: Tier = DEFAULT_TIER
    """The priority tier asked for (a single offer's; a deal's is ``default``)."""
    tier_percent: int = 100
    """What ``tier`` costs as a percentage of the offer's prices: ``price`` is that much."""


@dataclass(frozen=True, slots=True)
class Submission:
    id: uuid.UUID
    status: RequestStatus
    price: int
    duplicate: bool


class Submitter:
    def __init__(
        self,
        pool: PgPool,
        batcher: SubmitBatcher,
        *,
        max_prompt_chars: int,
        max_unfinished: Callable[[], int],
        url_policy: UrlPolicy | None = None,
        store: BlobStore | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        """Where input files' bytes go (none needed for orders without files)."""
        self._batcher = batcher
        self._max_prompt_chars = max_prompt_chars
        self._max_unfinished = max_unfinished
        """The cap in force now (the central config may change it): 0 for none."""
        self._url_policy = url_policy or UrlPolicy()
        """What one-off webhook URLs may reach beyond public addresses (``RELAI_SSRF_ALLOW``)."""

    async def submit(
        self,
        *,
        user: Principal,
        order: Order,
        idempotency_key: str | None,
        traceparent: str | None,
        webhook_url: str | None = None,
    ) -> Submission:
        """Submit ``order`` for ``user``; ``webhook_url`` (the ``Relai-Webhook-Url`` header) is
        the one-off URL its final state is sent to (422 when endpoints could not have it, or the
        user has no one-off secret to sign it with)."""
        if webhook_url is not None:
            await check_one_off_url(self._pool, self._url_policy, user_id=user.id, url=webhook_url)
        with span(
            "relai.submit", attributes={"relai.offer": order.name, "relai.handler": order.handler}
        ) as current:
            submission = await self._submit(
                user,
                order,
                idempotency_key,
                # With tracing on, the caller's trace is joined by the HTTP server span already.
                current_traceparent() or traceparent,
                webhook_url,
            )
            if current is not None:
                current.set_attribute("relai.request_id", str(submission.id))
                current.set_attribute("relai.duplicate", submission.duplicate)
        if not submission.duplicate:
            requests, credits = _counters(order.name, order.handler)
            requests.inc()
            credits.inc(order.price)
        return submission

    async def _submit(
        self,
        user: Principal,
        order: Order,
        idempotency_key: str | None,
        traceparent: str | None,
        webhook_url: str | None,
    ) -> Submission:
        request_id = derive_request_id(user.id, order.key, idempotency_key)
        trace = valid_traceparent(traceparent) or new_traceparent()
        new = self._new_request(user, order, request_id, trace, idempotency_key, webhook_url)
        await self._store_files(order.files)
        cap = self._max_unfinished()
        try:
            if cap > 0:
                # Counted and written under the user's lock: a burst cannot pass the cap. Such
                # submissions leave the group commit, one user's at a time.
                created = await repository.insert_within_cap(self._pool, new, cap=cap)
            else:
                created = await self._batcher.submit(new)
        except repository.CapReached as exc:
            raise TooManyRequests(
                f"you have {cap} unfinished requests, the most allowed; submit more once some end",
                retry_after=await self._until_one_ends(user.id),
                limit=cap,
            ) from exc
        except repository.KeyReused as exc:
            raise InvalidInputs(KEY_REUSED) from exc
        except ShortBalance as exc:
            SUBMISSION_REFUSED_CREDITS.inc()
            log.info("request.refused", request_id=str(request_id), reason="insufficient credits")
            what = "deal" if order.deal_id else "request"
            raise InsufficientCredits(
                f"this {what} costs {order.price} credits, more than your available balance",
                price=order.price,
            ) from exc
        if created:
            SUBMISSION_ACCEPTED.inc()
            log.debug("request.accepted", request_id=str(request_id), offer=order.name)
            return Submission(request_id, RequestStatus.PENDING, order.price, duplicate=False)
        SUBMISSION_DUPLICATE.inc()
        existing = await repository.get_status(self._pool, request_id, user.id)
        if existing is None:  # pragma: no cover - ids are per user, so only a racing delete
            raise BadRequest("the request could not be recorded; try again")
        return Submission(
            request_id, RequestStatus(existing["status"]), existing["price"], duplicate=True
        )

    async def _until_one_ends(self, user_id: uuid.UUID) -> int:
        """Seconds until one of the user's requests is likely to end, from the rate at which
        they ended in the last minute (a minute when none did), from 1 to 60."""
        ended = await reads.ended_recently(self._pool, user_id)
        if not ended:
            return int(reads.DRAIN_WINDOW_S)
        return max(1, min(int(reads.DRAIN_WINDOW_S), math.ceil(reads.DRAIN_WINDOW_S / ended)))

    async def _store_files(self, files: tuple[SubmittedFile, ...]) -> None:
        """Register the blobs of ``files`` (touched now, so that collection leaves them), then
        put the bytes that came with the submission: before the statement that refers to
        them. A duplicate submission stores the same bytes again, which changes nothing."""
        if not files:
            return
        await uploads.register_blobs(self._pool, [(f.sha256, f.size) for f in files])
        for f in files:
            if f.data is not None:
                if self._store is None:  # pragma: no cover - the app always has one
                    raise RuntimeError("input files need a blob store")
                await self._store.put(f.data)

    def _new_request(
        self,
        user: Principal,
        order: Order,
        request_id: uuid.UUID,
        trace: str,
        idempotency_key: str | None,
        webhook_url: str | None,
    ) -> repository.NewRequest:
        steps = order.deal_id is not None
        model = order.jobs[0].offer.model
        files = tuple(
            uploads.InputFile(
                id=input_file_id(request_id, f.name),
                name=f.name,
                sha256=f.sha256,
                media_type=f.media_type,
                bytes=f.size,
                width=f.width,
                height=f.height,
                filename=f.filename,
            )
            for f in order.files
        )
        refs = {f.name: f.ref() for f in files} or None
        payloads: list[str] = []
        for idx, job in enumerate(order.jobs):
            if job.prompt is None:
                continue
            if len(job.prompt) > self._max_prompt_chars:
                what = f"the prompt of step {idx}" if steps else "the prompt"
                raise InvalidInputs(
                    f"{what} is {len(job.prompt)} characters long; "
                    f"the limit is {self._max_prompt_chars}",
                    limit=self._max_prompt_chars,
                )
            run = outbox.Run(
                job.offer.handler,
                job.prompt,
                job.offer.params,
                job.offer.create_qty,
                messages=job.messages,
                options=job.options,
                files=refs,
                tier=order.tier,
                route=job.offer.route,
            )
            payloads.append(
                outbox.first_run(
                    run,
                    request_id=request_id,
                    user_id=user.id,
                    traceparent=trace,
                    step=idx if steps else None,
                )
            )
        return repository.NewRequest(
            id=request_id,
            user_id=user.id,
            offer_id=order.offer_id,
            deal_id=order.deal_id,
            inputs={**order.inputs, **{f.name: f.id for f in files}},
            prompt="" if steps else (order.jobs[0].prompt or ""),
            price=order.price,
            traceparent=trace,
            payloads=tuple(payloads),
            steps=tuple(
                repository.NewStep(idx, j.offer.id, j.role, j.mode, j.price, j.prompt)
                for idx, j in enumerate(order.jobs)
            )
            if steps
            else (),
            idempotency_key=idempotency_key,
            messages=None if steps else order.jobs[0].messages,
            options=None if steps else order.jobs[0].options,
            pricing=order.pricing,
            webhook_url=webhook_url,
            files=files,
            tier=order.tier,
            tier_percent=order.tier_percent,
            model=None if steps or model is None else (model.name, model.version),
            model_percents=None if steps else order.jobs[0].offer.model_percents,
        )


@functools.lru_cache(maxsize=4096)
def _counters(name: str, handler: str) -> tuple[CounterChild, CounterChild]:
    """The counters of what is bought, looked up once (``labels()`` costs more than the
    increment)."""
    return REQUESTS_BY_OFFER.labels(name, handler), CREDITS_RESERVED.labels(name, handler)

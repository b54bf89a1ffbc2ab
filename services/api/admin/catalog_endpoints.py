"""Administration of the catalog: handlers, models, offers and deals. Every route needs the
admin role (403). Bodies are the entries of the catalog file; an invalid template, an unknown
handler, model or offer, a deal naming an offer with token prices or file inputs, or an alias
another enabled offer has, is 422 and writes nothing. API processes see a change within
``RELAI_CATALOG_REFRESH_S`` (a new name at once)."""

from typing import Any, Literal

from fastapi import APIRouter, Response, status

from libs import catalog
from libs.catalog import DealSpec, HandlerSpec, ModelSpec, OfferSpec
from libs.catalog.apply import check_params_urls
from libs.security.ssrf import UnsafeUrlError, UrlPolicy
from services.api.admin.dependencies import ADMIN_ONLY, AdminUser
from services.api.deps import PoolDep, SettingsDep
from services.api.errors import InvalidInputs, NotFound

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ONLY)

Kind = Literal["handler", "offer", "deal"]
CREATED: dict[int | str, dict[str, Any]] = {201: {"description": "Created"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such entry"}}


async def _check_urls(name: str, params: dict[str, Any], settings: SettingsDep) -> None:
    try:
        await check_params_urls(name, params, UrlPolicy.from_allow(settings.ssrf_allow))
    except UnsafeUrlError as exc:
        raise InvalidInputs(str(exc)) from None


def _created(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


@router.get("/catalog")
async def get_catalog(_: AdminUser, pool: PoolDep) -> dict[str, Any]:
    """Every handler, model, offer, deal and prompt template, enabled or not, as ``relai catalog
    export`` writes it (values left at their defaults are left out)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return catalog.catalog_data(await catalog.export_catalog(conn))


@router.put(
    "/handlers",
    response_model=HandlerSpec,
    responses={
        **CREATED,
        422: {"description": "Params that carry a credential, or a URL the SSRF guard refuses"},
    },
)
async def put_handler(
    body: HandlerSpec, _: AdminUser, pool: PoolDep, settings: SettingsDep, response: Response
) -> HandlerSpec:
    """Create (201) or update (200) the handler ``body.id``; 422 when its params carry a
    credential or one of their URLs points where the SSRF guard does not let it
    (``RELAI_SSRF_ALLOW``)."""
    await _check_urls(f"handler {body.id}", body.params, settings)
    async with pool.acquire() as conn:
        _created(response, await catalog.upsert_handler(conn, body))
    return body


@router.put(
    "/models",
    response_model=ModelSpec,
    responses={**CREATED, 422: {"description": "An unknown handler, or limits that do not hold"}},
)
async def put_model(body: ModelSpec, _: AdminUser, pool: PoolDep, response: Response) -> ModelSpec:
    """Create (201) or update (200) the model version ``body.name@body.version``. As
    ``default``, it takes over from the name's other versions: the offers that pin none route
    their next requests to it (within ``RELAI_CATALOG_REFRESH_S``), requests already submitted
    keep theirs. Deployments name the operator's integrations, never a URL or a key."""
    async with pool.acquire() as conn:
        try:
            _created(response, await catalog.upsert_model(conn, body))
        except (catalog.UnknownReferenceError, catalog.ModelInUseError) as exc:
            raise InvalidInputs(str(exc)) from exc
    return body


@router.post(
    "/models/{name}/{version}/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, 422: {"description": "An enabled offer routes to it"}},
)
async def disable_model(name: str, version: str, _: AdminUser, pool: PoolDep) -> None:
    """Disable a model version; 422 while an enabled offer routes to it (pinned to it, or to
    the model's default and it is the default): switch the default first."""
    async with pool.acquire() as conn:
        try:
            found = await catalog.disable_model(conn, f"{name}@{version}")
        except catalog.ModelInUseError as exc:
            raise InvalidInputs(str(exc)) from exc
    if not found:
        raise NotFound(f"no model {name}@{version}")


@router.put(
    "/offers",
    response_model=OfferSpec,
    responses={
        **CREATED,
        422: {
            "description": "An invalid template, an unknown handler, token prices or file "
            "inputs for an offer an enabled deal names, file inputs named like template "
            "variables, an alias another enabled offer has, or params as for a handler"
        },
    },
)
async def put_offer(
    body: OfferSpec, _: AdminUser, pool: PoolDep, settings: SettingsDep, response: Response
) -> OfferSpec:
    """Create (201) or update (200) the offer ``body.service/body.action``; 422 as for a
    handler, and when another enabled offer has one of its aliases (the error names both)."""
    await _check_urls(f"offer {body.service}/{body.action}", body.params, settings)
    async with pool.acquire() as conn:
        try:
            _created(response, await catalog.upsert_offer(conn, body))
        except (
            catalog.UnknownReferenceError,
            catalog.NotForDealsError,
            catalog.AliasTakenError,
        ) as exc:
            raise InvalidInputs(str(exc)) from exc
    return body


@router.put(
    "/deals",
    response_model=DealSpec,
    responses={
        **CREATED,
        422: {"description": "An unknown offer, or one with token prices or file inputs"},
    },
)
async def put_deal(body: DealSpec, _: AdminUser, pool: PoolDep, response: Response) -> DealSpec:
    """Create (201) or update (200) the deal ``body.slug``."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            _created(response, await catalog.upsert_deal(conn, body))
        except (catalog.UnknownReferenceError, catalog.NotForDealsError) as exc:
            raise InvalidInputs(str(exc)) from exc
    return body


async def _disable(pool: PoolDep, kind: Kind, name: str) -> None:
    async with pool.acquire() as conn:
        if not await catalog.disable(conn, kind, name):
            raise NotFound(f"no {kind} {name}")


@router.post(
    "/handlers/{handler_id}/disable", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND
)
async def disable_handler(handler_id: str, _: AdminUser, pool: PoolDep) -> None:
    """Disable a handler: its offers, and the deals built on them, stop being offered."""
    await _disable(pool, "handler", handler_id)


@router.post(
    "/offers/{service}/{action}/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=NOT_FOUND,
)
async def disable_offer(service: str, action: str, _: AdminUser, pool: PoolDep) -> None:
    await _disable(pool, "offer", f"{service}/{action}")


@router.post("/deals/{slug}/disable", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def disable_deal(slug: str, _: AdminUser, pool: PoolDep) -> None:
    await _disable(pool, "deal", slug)

"""The OpenAPI document: FastAPI's generic one plus a ``POST`` path per enabled offer and deal,
each operation declaring the errors it answers in the one error shape (``errors.py``); and the
pages that show it, Swagger UI and ReDoc, with their scripts and styles served by the API itself
(from the ``fastapi-offline`` package), so that the pages load nothing from another host.

Offers are data, so the document is built per call from the offers the catalog holds now;
FastAPI would serve the first document it built for the life of the process. Only the generic
part, which changes with the code alone, is cached (by ``FastAPI.openapi``).
"""

import html
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from services.api.catalog.deals import Deal
from services.api.catalog.schemas import (
    inputs_schema,
    multipart_schema,
    offer_view,
    submit_path,
)
from services.api.catalog.service import Offer
from services.api.deals.dependencies import DealsDep
from services.api.deals.openapi import with_deals
from services.api.deps import CatalogDep
from services.api.error_docs import with_error_responses
from services.api.errors import NotFound
from services.api.hardening import docs_csp
from services.api.submission import SUBMIT_ERRORS

OPENAPI_URL = "/openapi.json"
PUBLIC_PATHS = frozenset({"/health"})
"""Operations that need no credentials; every other one does."""
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (rk_...) or, with OIDC configured, a JWT from its issuer.",
    }
}
DOCS_ASSETS_URL = "/docs/assets"
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
"""The files the documentation pages load, by name, with their content type."""
GENERIC_SUBMIT = "/svc/{service_name}/{action}"
SUBMITTED_REF = "#/components/schemas/Submitted"


def _cost(offer: Offer) -> str:
    if not offer.token_priced:
        return f"Costs {offer.price} credits"
    view = offer_view(offer)
    return (
        f"Costs {offer.price} credits, plus {view.input_price or 0} per 1,000 input tokens and "
        f"{view.output_price or 0} per 1,000 output tokens (the most it can cost is reserved, "
        "what its usage costs is charged)"
    )


def _submit_operation(offer: Offer, parameters: list[Any], operation_id: str) -> dict[str, Any]:
    inputs = inputs_schema(offer).model_dump(by_alias=True)
    content: dict[str, Any] = {"application/json": {"schema": inputs}}
    files = ""
    if offer.files:
        content["multipart/form-data"] = multipart_schema(offer)
        files = (
            " Its file inputs are parts of a multipart/form-data body (its variables the text "
            "fields), or, in a JSON body, the ids of the caller's uploads (POST /files)."
        )
    return {
        "tags": ["offers"],
        "summary": f"Submit to {offer.service}/{offer.action}",
        "description": (
            f"{_cost(offer)} and makes {offer.create_qty} result(s). "
            f"Answers 202 with the request's id and links.{files}"
        ),
        "operationId": operation_id,
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": content,
        },
        "responses": {
            "202": {
                "description": "Accepted",
                "content": {"application/json": {"schema": {"$ref": SUBMITTED_REF}}},
            },
            **SUBMIT_ERRORS,
            "422": {
                "description": "Missing, unknown or non-string fields, a prompt too long, "
                "a file that is not an image the offer accepts (type, bytes, pixels) or not one "
                "of the caller's, or a refused Relai-Webhook-Url"
            },
        },
    }


def _view_operation(
    offer: Offer, generic_view: dict[str, Any], operation_id: str
) -> dict[str, Any]:
    """``GET /svc/<service>/<action>``: the generic view's answers, without its path parameters
    (a client matching the offer's own path finds its ``GET`` there, not under the template)."""
    return {
        **generic_view,
        "tags": ["offers"],
        "summary": f"The offer {offer.service}/{offer.action}",
        "operationId": operation_id,
        "parameters": [p for p in generic_view.get("parameters", []) if p.get("in") != "path"],
        # No parameter left to refuse: never a 422.
        "responses": {k: r for k, r in generic_view["responses"].items() if k != "422"},
    }


def _unique(base: str, taken: set[str]) -> str:
    operation_id, suffix = base, 1
    while operation_id in taken:
        suffix += 1
        operation_id = f"{base}_{suffix}"
    taken.add(operation_id)
    return operation_id


def _operation_ids(paths: dict[str, Any]) -> set[str]:
    return {
        op["operationId"]
        for item in paths.values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }


def with_offers(generic: dict[str, Any], offers: Iterable[Offer]) -> dict[str, Any]:
    """``generic`` (left unchanged) with ``POST /svc/<service>/<action>`` for each offer, and
    its ``GET``.

    The offer operations take their header parameters from the generic submit operation.
    """
    paths: dict[str, Any] = dict(generic.get("paths", {}))
    generic_submit = paths.get(GENERIC_SUBMIT, {}).get("post", {})
    generic_view = paths.get(GENERIC_SUBMIT, {}).get("get")
    headers = [p for p in generic_submit.get("parameters", []) if p.get("in") != "path"]
    taken = _operation_ids(paths)
    for offer in offers:
        path = submit_path(offer.service, offer.action)
        item = dict(paths.get(path, {}))
        if "post" in item:
            continue
        name = f"{offer.service}_{offer.action}"
        item["post"] = _submit_operation(offer, headers, _unique(f"submit_{name}", taken))
        if generic_view is not None:
            item["get"] = _view_operation(offer, generic_view, _unique(f"offer_{name}", taken))
        paths[path] = item
    return {**generic, "paths": paths}


def with_security(document: dict[str, Any]) -> dict[str, Any]:
    """Declare the bearer scheme every operation but the public ones requires."""
    components = dict(document.get("components", {}))
    components["securitySchemes"] = SECURITY_SCHEMES
    paths = {}
    for path, item in document["paths"].items():
        if path in PUBLIC_PATHS:
            item = {
                k: ({**op, "security": []} if isinstance(op, dict) and "responses" in op else op)
                for k, op in item.items()
            }
        paths[path] = item
    return {**document, "components": components, "security": [{"bearer": []}], "paths": paths}


def build_document(
    generic: dict[str, Any], offers: Iterable[Offer], deals: Iterable[Deal]
) -> dict[str, Any]:
    """The document served: ``generic`` (left unchanged) with the offers, the deals, the
    security scheme and the error responses."""
    document = with_security(with_deals(with_offers(generic, offers), deals))
    return with_error_responses(document)


def _root_path(request: Request) -> str:
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = docs_csp(bytes(page.body).decode())
    return page


REDOC_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{favicon}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript to show this documentation.</noscript>
<redoc spec-url="{openapi_url}" native-scrollbars></redoc>
<script src="{script}"></script>
</body>
</html>
"""
"""ReDoc with the browser's own scrollbars: its scrollbar library's stylesheet is inline text,
which the page's policy does not allow."""


def docs_assets_dir() -> Path:
    """Where the installed ``fastapi-offline`` keeps Swagger UI's and ReDoc's files."""
    directory = Path(str(files("fastapi_offline") / "static"))
    missing = [name for name in DOCS_ASSETS if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(f"fastapi-offline ships no {', '.join(missing)} in {directory}")
    return directory


def install_openapi(app: FastAPI) -> None:
    """Serve ``/openapi.json`` with the offers, ``/docs`` and ``/redoc`` over it, and the files
    those pages load under ``/docs/assets/``; make ``app.openapi()`` declare the errors.

    ``app`` must be made with ``openapi_url=None``, so that FastAPI serves neither its cached
    document nor its own documentation pages.
    """
    if app.openapi_url is not None:
        raise ValueError("create the app with openapi_url=None: this serves the document")
    assets = docs_assets_dir()

    def generic_document() -> dict[str, Any]:
        """FastAPI's document, with the errors declared: built once (code alone changes it)."""
        if not app.openapi_schema:
            app.openapi_schema = with_error_responses(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = generic_document  # type: ignore[method-assign]

    async def openapi(request: Request, catalog: CatalogDep, deals: DealsDep) -> JSONResponse:
        document = build_document(
            app.openapi(), await catalog.list_offers(), await deals.list_deals()
        )
        root_path = _root_path(request)
        servers = document.get("servers", [])
        if root_path and app.root_path_in_servers and root_path not in {s["url"] for s in servers}:
            document["servers"] = [{"url": root_path}, *servers]
        return JSONResponse(document)

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _with_csp(
            get_swagger_ui_html(
                openapi_url=root + OPENAPI_URL,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{DOCS_ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{DOCS_ASSETS_URL}/favicon.png",
            )
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = REDOC_PAGE.format(
            title=html.escape(f"{app.title} - ReDoc"),
            favicon=html.escape(f"{root}{DOCS_ASSETS_URL}/favicon.png"),
            openapi_url=html.escape(root + OPENAPI_URL),
            script=html.escape(f"{root}{DOCS_ASSETS_URL}/redoc.standalone.js"),
        )
        return _with_csp(HTMLResponse(page))

    async def docs_asset(name: str) -> FileResponse:
        media_type = DOCS_ASSETS.get(name)
        if media_type is None:
            raise NotFound("no such documentation file")
        return FileResponse(assets / name, media_type=media_type)

    app.add_api_route(OPENAPI_URL, openapi, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        DOCS_ASSETS_URL + "/{name}", docs_asset, methods=["GET"], include_in_schema=False
    )

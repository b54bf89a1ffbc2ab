"""``/console`` and ``/admin/ui``: two static pages, each loading one ES module from
``/ui/assets/``, and ``/console/config`` (how to sign in). The pages hold no data and need no
credentials: the scripts ask for an API key (kept in the tab's ``sessionStorage``) or sign in
with OIDC, then call the public API with ``Authorization: Bearer``, so every rule is the API's
own (the admin panel's calls are the admin API's, 403 for anyone but an admin).

Every page carries a Content-Security-Policy allowing scripts, styles and connections to this
origin only (plus the OIDC issuer's token endpoint when the console signs in there), no inline
script or style, and no framing.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from services.api.errors import NotFound
from services.api.settings import ApiSettings
from services.api.ui.oidc import Discovery, origin

STATIC = Path(str(files("services.api.ui") / "static"))
ASSETS_URL = "/ui/assets"
ASSETS = {
    "api.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "signin.js": "text/javascript; charset=utf-8",
    "ui.css": "text/css; charset=utf-8",
}
NO_CACHE = {"cache-control": "no-cache"}
"""Revalidated on each load (their ETag makes that a 304): an upgrade shows at once."""


def page_csp(connect: tuple[str, ...] = ()) -> str:
    """The pages' policy: this origin only (``connect`` adds origins the page may call)."""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            " ".join(("connect-src 'self'", *connect)),
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


class Pages:
    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings
        self._html = {name: (STATIC / name).read_text() for name in ("console.html", "admin.html")}
        """The pages, whose asset URLs start at the API's root path (behind a proxy's prefix)."""
        self._discovery = None
        if settings.oidc_issuer and settings.oidc_client_id:
            self._discovery = Discovery(settings.oidc_issuer)

    async def oidc(self) -> dict[str, Any] | None:
        """How the console signs in with the issuer; None: API keys only."""
        if self._discovery is None:
            return None
        endpoints = await self._discovery.endpoints()
        if endpoints is None:
            return None
        return {
            "issuer": self._settings.oidc_issuer,
            "client_id": self._settings.oidc_client_id,
            "scope": self._settings.oidc_scopes,
            "audience": self._settings.oidc_audience,
            "authorization_endpoint": endpoints.authorization_endpoint,
            "token_endpoint": endpoints.token_endpoint,
        }

    async def _page(self, request: Request, name: str) -> HTMLResponse:
        signin = await self.oidc()
        connect = (origin(signin["token_endpoint"]),) if signin else ()
        headers = {**NO_CACHE, "content-security-policy": page_csp(connect)}
        root = html.escape(request.scope.get("root_path", "").rstrip("/"))
        page = self._html[name].replace("{root}", root)
        return HTMLResponse(page, headers=headers)

    async def console(self, request: Request) -> HTMLResponse:
        return await self._page(request, "console.html")

    async def admin_panel(self, request: Request) -> HTMLResponse:
        return await self._page(request, "admin.html")

    async def console_config(self) -> JSONResponse:
        return JSONResponse({"oidc": await self.oidc()}, headers={"cache-control": "no-store"})

    @staticmethod
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound("no such file")
        return FileResponse(STATIC / name, media_type=media_type, headers=NO_CACHE)


def install_ui(app: FastAPI, settings: ApiSettings) -> None:
    """Serve the console, the admin panel and their assets (unless ``RELAI_UI_ENABLED`` is
    off)."""
    if not settings.ui_enabled:
        return
    pages = Pages(settings)
    routes: dict[str, Callable[..., Awaitable[Response]]] = {
        "/console": pages.console,
        "/console/config": pages.console_config,
        "/admin/ui": pages.admin_panel,
        ASSETS_URL + "/{name}": pages.asset,
    }
    for path, endpoint in routes.items():
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)

"""Central configs over the admin API: every config and its versions, one version as YAML, the
diff of two, activate and roll back. Secrets are never shown: a version is its sealed document
with every ``~`` secret masked, a diff marks a changed secret ``******** (changed)`` (telling
that needs the Fernet keys), and revealing stays with the operator's ``relai config show
--reveal``. Uploading too: a new version carries its secrets in clear text, which belongs on
the operator's machine. The store is the one the API's bootstrap config names
(``RELAI_CONFIG_FILE``); without one, every route is 404. Admin role only (403)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from libs import config
from libs.config import ConfigError, ConfigWatcher, NothingToRollBackError, UnknownConfigError
from services.api.admin.dependencies import ADMIN_ONLY, AdminUser
from services.api.errors import Conflict, NotFound
from services.api.state import app_state

router = APIRouter(prefix="/admin/configs", tags=["admin"], responses=ADMIN_ONLY)

ConfigId = Annotated[str, Path(max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]
VERSION_PATTERN = r"^[^\x00-\x1f\x7f]+$"
VersionText = Annotated[str, Field(min_length=1, max_length=200, pattern=VERSION_PATTERN)]
VersionParam = Annotated[str, Path(max_length=200, pattern=VERSION_PATTERN)]
VersionQuery = Annotated[str, Query(max_length=200, pattern=VERSION_PATTERN)]
NO_STORE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No central configs (RELAI_CONFIG_FILE unset), or no such config"}
}


class ConfigSummaryView(BaseModel):
    config_id: str
    active_version: str | None
    latest_version: str
    versions: int
    updated_at: datetime


class VersionView(BaseModel):
    version: str
    checksum: str
    author: str
    created_at: datetime
    active: bool


class VersionDocument(VersionView):
    config_id: str
    document: str
    """The version as YAML, every secret masked (``********``)."""


class DiffView(BaseModel):
    config_id: str
    old: str
    new: str
    diff: str
    """A unified diff, secrets masked; a secret that changed shows as ``******** (changed)``;
    empty when the versions are the same."""


class ActivateBody(BaseModel):
    model_config = {"extra": "forbid"}

    version: VersionText


class ActiveView(BaseModel):
    config_id: str
    active_version: str


def _watcher(conn: HTTPConnection) -> ConfigWatcher:
    watcher = app_state(conn).config
    if watcher is None:
        raise NotFound("no central configs: the API has no RELAI_CONFIG_FILE")
    return watcher


def _author(admin: AdminUser) -> str:
    return f"admin {admin.name} (admin API)"


def _version(stored: config.StoredVersion) -> VersionView:
    return VersionView(
        version=stored.version,
        checksum=stored.checksum,
        author=stored.author,
        created_at=stored.created_at,
        active=stored.active,
    )


@router.get("", response_model=list[ConfigSummaryView], responses=NO_STORE)
async def list_configs(conn: HTTPConnection, _: AdminUser) -> list[ConfigSummaryView]:
    """Every config id with its active and latest version."""
    summaries = await _watcher(conn).store.summaries()
    return [ConfigSummaryView.model_validate(s, from_attributes=True) for s in summaries]


@router.get("/{config_id}/versions", response_model=list[VersionView], responses=NO_STORE)
async def list_versions(
    config_id: ConfigId, conn: HTTPConnection, _: AdminUser
) -> list[VersionView]:
    """The config's versions, oldest first."""
    try:
        versions = await _watcher(conn).store.versions(config_id)
    except UnknownConfigError as exc:
        raise NotFound(str(exc)) from None
    return [_version(v) for v in versions]


@router.get(
    "/{config_id}/versions/{version}",
    response_model=VersionDocument,
    responses={**NO_STORE, 409: {"description": "The stored document fails its checksum"}},
)
async def show_version(
    config_id: ConfigId,
    version: VersionParam,
    conn: HTTPConnection,
    _: AdminUser,
) -> VersionDocument:
    """One version as YAML, its secrets masked."""
    try:
        stored = await _watcher(conn).store.get(config_id, version)
        document = config.show(stored, None, reveal=False)
    except UnknownConfigError as exc:
        raise NotFound(str(exc)) from None
    except ConfigError as exc:
        raise Conflict(str(exc)) from None
    view = _version(stored)
    return VersionDocument(**view.model_dump(), config_id=config_id, document=document)


@router.get(
    "/{config_id}/diff",
    response_model=DiffView,
    responses={
        **NO_STORE,
        409: {"description": "The API has no Fernet keys, or a document fails its checksum"},
    },
)
async def diff_versions(
    config_id: ConfigId,
    conn: HTTPConnection,
    _: AdminUser,
    old: VersionQuery,
    new: VersionQuery,
) -> DiffView:
    """What changed from ``old`` to ``new``, secrets masked (a changed one marked)."""
    watcher = _watcher(conn)
    try:
        before = await watcher.store.get(config_id, old)
        after = await watcher.store.get(config_id, new)
    except UnknownConfigError as exc:
        raise NotFound(str(exc)) from None
    if watcher.fernet is None:
        raise Conflict(
            "telling which secrets changed needs the Fernet keys, which the API's bootstrap "
            "config does not name: use `relai config diff`"
        )
    try:
        text = config.diff(before, after, watcher.fernet)
    except ConfigError as exc:
        raise Conflict(str(exc)) from None
    return DiffView(config_id=config_id, old=old, new=new, diff=text)


@router.post("/{config_id}/activate", response_model=ActiveView, responses=NO_STORE)
async def activate(
    config_id: ConfigId, body: ActivateBody, conn: HTTPConnection, admin: AdminUser
) -> ActiveView:
    """Make ``version`` the active one; the services following it switch within moments (a
    version a service cannot load is logged there and skipped: it keeps its last good one)."""
    try:
        await _watcher(conn).store.activate(config_id, body.version, author=_author(admin))
    except UnknownConfigError as exc:
        raise NotFound(str(exc)) from None
    return ActiveView(config_id=config_id, active_version=body.version)


@router.post(
    "/{config_id}/rollback",
    response_model=ActiveView,
    responses={**NO_STORE, 409: {"description": "No earlier activation to roll back to"}},
)
async def rollback(config_id: ConfigId, conn: HTTPConnection, admin: AdminUser) -> ActiveView:
    """Activate again the version that was active before the current activation."""
    try:
        version = await _watcher(conn).store.rollback(config_id, author=_author(admin))
    except UnknownConfigError as exc:
        raise NotFound(str(exc)) from None
    except NothingToRollBackError as exc:
        raise Conflict(str(exc)) from None
    return ActiveView(config_id=config_id, active_version=version)

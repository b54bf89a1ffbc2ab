"""``relai config ...``: upload, list, show, diff, activate and roll back central configs."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from cryptography.fernet import Fernet, MultiFernet

from libs import config
from libs.accounts import admin_holding
from libs.config import Bootstrap, ConfigError, ConfigStore
from libs.config.reveals import record_reveal, reveals
from libs.db import PgConnection
from services.cli import local_stack
from services.cli._common import CliError, connect, display_url, reports_errors
from services.cli.settings import ROOT, get_settings

app = typer.Typer(
    help="Central, versioned configs (secrets encrypted with Fernet). The store and keys come "
    "from the bootstrap config in RELAI_CONFIG_FILE (default: config/bootstrap.yaml).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

T = TypeVar("T")

DEFAULT_BOOTSTRAP = ROOT / "config" / "bootstrap.yaml"

IdArgument = Annotated[str, typer.Argument(help="The config id (e.g. api, worker).")]
VersionArgument = Annotated[str, typer.Argument(help="A version of that config.")]


AuthorOption = Annotated[
    str | None, typer.Option("--author", help="Recorded with the change (default: your login).")
]


def _author(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _bootstrap() -> Bootstrap:
    path = get_settings().config_file or DEFAULT_BOOTSTRAP
    try:
        return config.read_bootstrap(path, os.environ)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def _fernet(bootstrap: Bootstrap) -> MultiFernet:
    try:
        return bootstrap.fernet()
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def _run(bootstrap: Bootstrap, action: Callable[[ConfigStore], Awaitable[T]]) -> T:
    settings = get_settings()
    # A config store in Postgres is on the accounts' database: DATABASE_URL or the local stack's.
    mongo = bootstrap.meta.source == "mongo"
    database_url = settings.database_url if mongo else local_stack.database_url(settings)

    async def run() -> T:
        try:
            async with config.open_store(
                bootstrap, database_url=database_url, mongo_url=settings.mongo_url
            ) as store:
                return await action(store)
        except ConfigError as exc:
            raise CliError(str(exc)) from exc
        except asyncpg.UndefinedTableError as exc:
            raise CliError(f"no config tables ({exc}): run `relai migrate`") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            where = display_url(database_url)
            raise CliError(f"cannot reach the config store at {where}: {exc}") from exc

    return asyncio.run(run())


@app.command("upload")
@reports_errors
def upload(
    file: Annotated[Path, typer.Argument(help="The config's YAML (~secret, ^bytes, !ENV).")],
    config_id: Annotated[str, typer.Option("--id", help="The config id (e.g. api, worker).")],
    version: Annotated[
        str | None, typer.Option("--version", help="Its version (default: the next number).")
    ] = None,
    activate: Annotated[bool, typer.Option("--activate", help="Activate it at once.")] = False,
    author: AuthorOption = None,
) -> None:
    """Store FILE as a new version of a config, its ~secrets encrypted.

    The file is loaded first exactly as a service loads it (secrets, bytes, environment
    variables, the config's schema): a config that fails is refused and nothing is stored.
    """
    try:
        text = file.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from exc
    bootstrap = _bootstrap()
    fernet = _fernet(bootstrap)
    try:
        config.seal_source(config_id, text, fernet, os.environ)
    except ConfigError as exc:
        raise CliError(f"{file} is refused: {exc}") from exc
    stored = _run(
        bootstrap,
        lambda store: config.upload(
            store,
            config_id,
            text,
            fernet=fernet,
            environ=os.environ,
            author=_author(author),
            version=version,
            activate=activate,
        ),
    )
    state = "active" if activate else f"not active: `relai config activate {config_id} ...`"
    typer.echo(f"uploaded {config_id} version {stored.version} ({stored.checksum[:19]}…), {state}")


@app.command("list")
@reports_errors
def list_(
    config_id: Annotated[str | None, typer.Argument(help="List this config's versions.")] = None,
) -> None:
    """Every config id with its active and latest version, or one config's versions."""
    bootstrap = _bootstrap()
    if config_id is None:
        summaries = _run(bootstrap, lambda store: store.summaries())
        if not summaries:
            typer.echo("no configs yet: `relai config upload FILE --id ID`", err=True)
        for s in summaries:
            typer.echo(
                f"{s.config_id}  active {s.active_version or '-'}  latest {s.latest_version}  "
                f"{s.versions} version(s)  updated {s.updated_at:%Y-%m-%d %H:%M:%S}"
            )
        return
    for v in _run(bootstrap, lambda store: store.versions(config_id)):
        marker = "  active" if v.active else ""
        typer.echo(
            f"{v.version}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.author}  {v.checksum[:19]}…{marker}"
        )


@app.command("show")
@reports_errors
def show(
    config_id: IdArgument,
    version: Annotated[
        str | None, typer.Option("--version", help="Default: the active version.")
    ] = None,
    reveal: Annotated[
        bool,
        typer.Option("--reveal", help="Decrypt the secrets (needs the keys and --admin-key)."),
    ] = False,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            envvar="RELAI_ADMIN_KEY",
            help="An admin's API key: --reveal needs one, and each reveal is recorded.",
        ),
    ] = None,
) -> None:
    """A version as YAML, secrets masked unless --reveal."""
    admin = _admin(admin_key) if reveal else None
    bootstrap = _bootstrap()
    fernet = _fernet(bootstrap) if reveal else None
    stored = _run(bootstrap, lambda store: store.get(config_id, version))
    try:
        text = config.show(stored, fernet, reveal=reveal)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if admin is not None:
        _in_postgres(
            lambda conn: record_reveal(
                conn, config_id=config_id, version=stored.version, admin=admin
            )
        )
    typer.echo(
        f"# {config_id} version {stored.version}, {stored.author}, "
        f"{stored.created_at:%Y-%m-%d %H:%M:%S}{', active' if stored.active else ''}"
        f"{f', secrets revealed to {admin}' if admin else ''}"
    )
    typer.echo(text, nl=False)


@app.command("reveals")
@reports_errors
def reveals_(
    config_id: Annotated[str | None, typer.Argument(help="Only this config's.")] = None,
) -> None:
    """Who revealed which version's secrets, and when (the latest 100, newest first)."""
    found = _in_postgres(lambda conn: reveals(conn, config_id=config_id))
    if not found:
        typer.echo("no secrets revealed yet", err=True)
    for r in found:
        typer.echo(f"{r.revealed_at:%Y-%m-%d %H:%M:%S}  {r.admin}  {r.config_id} {r.version}")


def _admin(admin_key: str | None) -> str:
    """The admin holding ``admin_key``, or a CliError saying why there is none."""
    if not admin_key:
        raise CliError(
            "--reveal decrypts secrets: it needs an admin's API key "
            "(--admin-key, or RELAI_ADMIN_KEY)"
        )
    admin = _in_postgres(lambda conn: admin_holding(conn, admin_key))
    if admin is None:
        raise CliError("--admin-key is not a live API key of an admin: nothing revealed")
    return admin


def _in_postgres(action: Callable[[PgConnection], Awaitable[T]]) -> T:
    """``action`` on the accounts' database (DATABASE_URL)."""

    async def run() -> T:
        async with connect(local_stack.database_url()) as conn:
            return await action(conn)

    return asyncio.run(run())


@app.command("diff")
@reports_errors
def diff(config_id: IdArgument, old: VersionArgument, new: VersionArgument) -> None:
    """What changed from version OLD to version NEW; secrets masked (a changed one is marked)."""
    bootstrap = _bootstrap()
    fernet = _fernet(bootstrap)

    async def both(store: ConfigStore) -> tuple[config.StoredVersion, config.StoredVersion]:
        return await store.get(config_id, old), await store.get(config_id, new)

    before, after = _run(bootstrap, both)
    try:
        text = config.diff(before, after, fernet)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if not text:
        typer.echo(f"{config_id}: versions {old} and {new} are the same", err=True)
    typer.echo(text, nl=False)


@app.command("activate")
@reports_errors
def activate(config_id: IdArgument, version: VersionArgument, author: AuthorOption = None) -> None:
    """Make VERSION the active one; running services switch to it within moments."""
    _run(_bootstrap(), lambda store: store.activate(config_id, version, author=_author(author)))
    typer.echo(f"{config_id}: version {version} is active")


@app.command("rollback")
@reports_errors
def rollback(config_id: IdArgument, author: AuthorOption = None) -> None:
    """Activate again the version that was active before the current one."""
    version = _run(_bootstrap(), lambda store: store.rollback(config_id, author=_author(author)))
    typer.echo(f"{config_id}: rolled back to version {version}")


@app.command("rotate-key")
@reports_errors
def rotate_key() -> None:
    """Re-encrypt the secrets of every stored version under the first key of meta.keys.

    Put the new key first and keep the old ones after it until this has run.
    """
    bootstrap = _bootstrap()
    fernet = _fernet(bootstrap)
    count = _run(bootstrap, lambda store: config.rotate_keys(store, fernet))
    typer.echo(f"re-encrypted {count} version(s) under the first key; older keys may now go")


@app.command("gen-key")
def gen_key() -> None:
    """Print a new Fernet key."""
    typer.echo(Fernet.generate_key().decode())

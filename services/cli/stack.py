"""``relai run``: the whole stack on one machine, for development and demos.

Servers (given, or embedded under ``.relai/``), schema, demo catalog, a demo user with a fresh
key, then ``relai-api``, ``relai-worker``, ``relai-recon`` and ``relai-dispatcher`` as child
processes until Ctrl-C.
While they run, ``.relai/stack.json`` tells the other commands run from this folder where the
database is (``services.cli.local_stack``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import typer

from libs.catalog import apply_catalog
from libs.embedded import EmbeddedServers, start_embedded
from services.cli import local_stack
from services.cli._common import CliError, connect
from services.cli.catalog import read_catalog
from services.cli.launcher import (
    ChildSpec,
    LaunchError,
    StopRequested,
    Supervisor,
    console_script,
    port_is_free,
    signals_deferred,
    stop_on_signals,
    wait_until_healthy,
)
from services.cli.migrate import upgrade_to_head
from services.cli.settings import ROOT, CliSettings
from services.cli.users import ensure_user_key


@dataclass(frozen=True)
class Stack:
    api_url: str
    recon_url: str
    dispatcher_url: str
    demo_user: str
    demo_key: str


def default_children(settings: CliSettings) -> list[ChildSpec]:
    api = [
        console_script("relai-api"),
        "--host",
        settings.api_host,
        "--port",
        str(settings.api_port),
    ]
    return [
        ChildSpec("relai-api", api, _bootstrap("api")),
        ChildSpec("relai-worker", [console_script("relai-worker")], _bootstrap("worker")),
        ChildSpec("relai-recon", [console_script("relai-recon")], _bootstrap("recon")),
        # The dispatcher has no central config: its settings are its environment's.
        ChildSpec("relai-dispatcher", [console_script("relai-dispatcher")]),
    ]


def _bootstrap(component: str) -> dict[str, str]:
    """Each service follows its own central config (``config/<component>.bootstrap.yaml``),
    unless ``RELAI_CONFIG_FILE`` names another bootstrap for them all."""
    if os.environ.get("RELAI_CONFIG_FILE"):
        return {}
    return {"RELAI_CONFIG_FILE": str(ROOT / "config" / f"{component}.bootstrap.yaml")}


def child_environment(
    settings: CliSettings, *, database_url: str, redis_url: str
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RELAI_API_PORT": str(settings.api_port),
        "RELAI_RECON_PORT": str(settings.recon_port),
        "RELAI_DISPATCHER_PORT": str(settings.dispatcher_port),
        # Every process reads and writes the same files: the API's uploads, the workers' results.
        "RELAI_BLOB_URL": os.environ.get("RELAI_BLOB_URL")
        or str((settings.data_dir / "blobs").resolve()),
    }


def banner(stack: Stack) -> str:
    key, api = stack.demo_key, stack.api_url
    auth = '-H "Authorization: Bearer $KEY"'
    return f"""
Relai is running: {api}  (recon health: {stack.recon_url}/health, webhook dispatcher
health: {stack.dispatcher_url}/health)

A fresh API key for the demo user {stack.demo_user!r} (shown once):
  export KEY={key}

Open the console in a browser and sign in with that key:
  {api}/console
(the admin panel, {api}/admin/ui, takes an admin's key:
  .venv/bin/relai users create --name root --credits 0 --admin)

Submit a request (the answer carries its id):
  curl {auth} -H 'content-type: application/json' -d '{{"text":"hello"}}' {api}/svc/demo/echo
Poll it:
  curl {auth} {api}/svc/request/<id>
Watch it live:
  websocat {auth} {api.replace("http://", "ws://", 1)}/ws/requests/<id>

Press Ctrl-C to stop.
"""


async def _prepare_database(settings: CliSettings, database_url: str) -> str:
    spec = read_catalog(settings.demo_catalog)
    async with connect(database_url) as conn:
        # Upsert only: what was added through the admin API survives a restart.
        await apply_catalog(conn, spec, prune=False, ssrf_allow=settings.ssrf_allow)
        return await ensure_user_key(conn, name=settings.demo_user, credits=settings.demo_credits)


def _check_ports(settings: CliSettings) -> None:
    for what, port, variable in (
        ("API", settings.api_port, "RELAI_API_PORT"),
        ("recon", settings.recon_port, "RELAI_RECON_PORT"),
        ("the dispatcher", settings.dispatcher_port, "RELAI_DISPATCHER_PORT"),
    ):
        if not port_is_free(settings.api_host, port):
            raise CliError(f"port {port} (for {what}) is already in use: free it or set {variable}")


def run_stack(
    settings: CliSettings,
    *,
    children: Callable[[CliSettings], Sequence[ChildSpec]] = default_children,
) -> int:
    """Run until a stop signal (exit status 0) or until a child dies (status 1)."""
    embedded: EmbeddedServers | None = None
    supervisor: Supervisor | None = None
    status = 0
    with stop_on_signals():
        try:
            _check_not_running(settings)
            _check_ports(settings)
            database_url, redis_url = settings.database_url, settings.redis_url
            if not (settings.database_configured and settings.redis_configured):
                typer.echo(f"starting embedded PostgreSQL and Valkey in {settings.data_dir}/")
                embedded = start_embedded(settings.data_dir)
                if not settings.database_configured:
                    database_url = embedded.database_url
                if not settings.redis_configured:
                    redis_url = embedded.redis_url
            # Migrations and the setup below work directly, never through a transaction pooler.
            direct_url = (
                settings.direct_database_url if settings.database_configured else database_url
            )
            typer.echo("migrating the database")
            upgrade_to_head(database_url=direct_url, alembic_config=settings.alembic_config)
            typer.echo(f"applying {settings.demo_catalog}; a new key for {settings.demo_user!r}")
            demo_key = asyncio.run(_prepare_database(settings, direct_url))
            env = child_environment(settings, database_url=database_url, redis_url=redis_url)
            supervisor = Supervisor(env=env, stop_timeout=settings.stop_timeout)
            for spec in children(settings):
                supervisor.start(spec)
            api_url = f"http://{settings.api_host}:{settings.api_port}"
            wait_until_healthy(
                f"{api_url}/health", timeout=settings.startup_timeout, exited=supervisor.exited
            )
            recon_url = f"http://{settings.api_host}:{settings.recon_port}"
            dispatcher_url = f"http://{settings.api_host}:{settings.dispatcher_port}"
            # The other ``relai`` commands run from this folder use this stack's database.
            local_stack.write_state(
                settings.data_dir,
                local_stack.this_process(
                    database_url=database_url, redis_url=redis_url, api_url=api_url
                ),
            )
            typer.echo(
                banner(Stack(api_url, recon_url, dispatcher_url, settings.demo_user, demo_key))
            )
            while (child := supervisor.exited()) is None:
                time.sleep(0.2)
            typer.echo(f"{child.describe()}; stopping the others", err=True)
            status = 1
        except StopRequested as stop:
            typer.echo(f"received {stop}, stopping")
        except (CliError, LaunchError) as exc:
            typer.echo(f"error: {exc}", err=True)
            status = 1
        finally:
            with signals_deferred():
                _shut_down(settings, supervisor, embedded)
    return status


def _check_not_running(settings: CliSettings) -> None:
    running = local_stack.running_stack(settings.data_dir)
    if running is not None:
        raise CliError(
            f"a local stack is already running from {settings.data_dir}/ (pid {running.pid}, "
            f"API {running.api_url}): stop it first"
        )


def _shut_down(
    settings: CliSettings, supervisor: Supervisor | None, embedded: EmbeddedServers | None
) -> None:
    local_stack.remove_state(settings.data_dir, os.getpid())
    if supervisor is not None:
        for name in supervisor.stop():
            typer.echo(f"{name} did not stop in time and was killed")
    if embedded is not None:
        embedded.stop()
    typer.echo("stopped")

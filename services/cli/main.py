"""The ``relai`` command."""

from __future__ import annotations

import typer

from services.cli import catalog, config, keys, local_stack, users
from services.cli._common import display_url, reports_errors
from services.cli.migrate import upgrade_to_head
from services.cli.settings import get_settings
from services.cli.stack import run_stack

app = typer.Typer(
    name="relai",
    help="Operate Relai: users, schema migrations, the catalog, configs, and a local stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(users.app, name="users")
app.add_typer(catalog.app, name="catalog")
app.add_typer(keys.app, name="keys")
app.add_typer(config.app, name="config")


@app.command()
@reports_errors
def migrate() -> None:
    """Upgrade the database in DATABASE_URL (else the local stack's) to the latest schema."""
    settings = get_settings()
    database_url = local_stack.database_url(settings)
    upgrade_to_head(database_url=database_url, alembic_config=settings.alembic_config)
    typer.echo(f"{display_url(database_url)} is at the latest schema")


@app.command()
def run() -> None:
    """Run api, worker and recon locally until Ctrl-C.

    Uses the servers in DATABASE_URL and REDIS_URL, or embedded ones kept in .relai/ when
    those are unset; migrates, applies the demo catalog and prints a demo API key. While it
    runs, .relai/stack.json tells the other commands run from this folder to use its database
    when DATABASE_URL is unset.
    """
    raise typer.Exit(run_stack(get_settings()))

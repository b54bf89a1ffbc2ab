"""``relai catalog ...``: apply a declarative catalog file, or export the current catalog."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from libs.catalog import (
    AliasTakenError,
    CatalogSpec,
    NotForDealsError,
    apply_catalog,
    catalog_yaml,
    export_catalog,
    load_catalog_file,
)
from libs.security.ssrf import UnsafeUrlError
from services.cli import local_stack
from services.cli._common import CliError, connect, reports_errors
from services.cli.settings import get_settings

app = typer.Typer(
    help="Manage the catalog of handlers, models, offers, deals and prompt templates.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def read_catalog(path: Path) -> CatalogSpec:
    """The validated catalog in ``path``, or a ``CliError`` that says what is wrong with it."""
    try:
        return load_catalog_file(path)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise CliError(f"{path} is not a valid catalog:\n{problems}") from exc


async def apply_catalog_at(database_url: str, spec: CatalogSpec) -> None:
    async with connect(database_url) as conn:
        try:
            await apply_catalog(conn, spec, ssrf_allow=get_settings().ssrf_allow)
        except (UnsafeUrlError, NotForDealsError, AliasTakenError) as exc:
            raise CliError(f"refused: {exc}") from exc


@app.command("apply")
@reports_errors
def apply(
    file: Annotated[Path, typer.Argument(help="Catalog YAML file (handlers and offers).")],
) -> None:
    """Upsert every handler, model, offer, deal and prompt template of FILE, and disable those it
    does not name, in one transaction.

    Applying the same file twice changes nothing; an invalid file is refused before anything
    is written.
    """
    spec = read_catalog(file)
    asyncio.run(apply_catalog_at(local_stack.database_url(), spec))
    typer.echo(
        f"applied {file}: {len(spec.handlers)} handlers, {len(spec.offers)} offers, "
        f"{len(spec.deals)} deals, {len(spec.prompt_templates)} prompt templates"
    )


async def _export(database_url: str) -> CatalogSpec:
    async with connect(database_url, snapshot=True) as conn:
        return await export_catalog(conn)


@app.command("export")
@reports_errors
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write the current catalog (every entry, enabled or not; no prompt template's usage count)
    as YAML that `relai catalog apply` accepts."""
    text = catalog_yaml(asyncio.run(_export(local_stack.database_url())))
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from exc

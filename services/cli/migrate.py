from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from services.cli._common import CliError, display_url


def upgrade_to_head(*, database_url: str, alembic_config: Path) -> None:
    """Bring the database at ``database_url`` to the latest schema (a no-op when it is there)."""
    if not alembic_config.is_file():
        raise CliError(f"no Alembic configuration at {alembic_config}")
    config = Config(str(alembic_config))
    # migrations/env.py prefers this option over DATABASE_URL; ConfigParser needs % doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    try:
        command.upgrade(config, "head")
    except DBAPIError as exc:
        cause = exc.orig if exc.orig is not None else exc
        raise CliError(f"migrating {display_url(database_url)} failed: {cause}") from exc
    except (OSError, asyncpg.PostgresError, SQLAlchemyError, CommandError) as exc:
        raise CliError(f"migrating {display_url(database_url)} failed: {exc}") from exc

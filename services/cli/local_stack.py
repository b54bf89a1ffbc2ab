"""The stack ``relai run`` runs from this folder, as the other ``relai`` commands find it.

While it runs, ``relai run`` keeps ``<data dir>/stack.json`` (``.relai/stack.json`` by default):
its pid and the database and Redis it uses, embedded or given. A command that needs the database
uses DATABASE_URL when set, else the database of that stack; a file whose process is gone (a
``relai run`` killed outright) is stale and ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from services.cli._common import CliError
from services.cli.settings import CliSettings, get_settings

STATE_FILE = "stack.json"
NO_DATABASE = "no DATABASE_URL and no running local stack (start one with `make run`)"


@dataclass(frozen=True)
class LocalStack:
    pid: int
    database_url: str
    redis_url: str
    api_url: str
    started: str | None = None
    """The process's start time as the kernel tells it (/proc), so that a reused pid is not
    taken for the stack; None where there is no /proc."""


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def _is_running(stack: LocalStack) -> bool:
    try:
        os.kill(stack.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    if stack.started is None:
        return True
    return _process_start(stack.pid) in (stack.started, None)


def this_process(*, database_url: str, redis_url: str, api_url: str) -> LocalStack:
    pid = os.getpid()
    return LocalStack(pid, database_url, redis_url, api_url, _process_start(pid))


def write_state(data_dir: Path, stack: LocalStack) -> Path:
    """Write the state file atomically, readable by its owner only (URLs may hold passwords)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(data_dir)
    partial = path.with_name(f".{STATE_FILE}.{stack.pid}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(json.dumps(asdict(stack), indent=2) + "\n")
    partial.replace(path)
    return path


def remove_state(data_dir: Path, pid: int) -> None:
    """Remove the state file if it is the one process ``pid`` wrote."""
    path = state_path(data_dir)
    stack = _read(path)
    if stack is not None and stack.pid == pid:
        path.unlink(missing_ok=True)


def _read(path: Path) -> LocalStack | None:
    try:
        fields = json.loads(path.read_text())
        return LocalStack(**fields)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        typer.echo(f"ignoring {path}: unreadable ({exc})", err=True)
        return None


def running_stack(data_dir: Path) -> LocalStack | None:
    """The stack running from ``data_dir``; None (with a message if stale) when there is none."""
    path = state_path(data_dir)
    stack = _read(path)
    if stack is None:
        return None
    if not _is_running(stack):
        typer.echo(
            f"ignoring {path}: the `relai run` that wrote it (pid {stack.pid}) is no longer "
            "running",
            err=True,
        )
        return None
    return stack


def database_url(settings: CliSettings | None = None) -> str:
    """DATABASE_URL (DATABASE_DIRECT_URL when set: a command's work, migrations included, wants
    a session of its own, not a transaction pooler) if set, else the database of the stack
    ``relai run`` runs from here."""
    settings = settings or get_settings()
    if settings.database_configured:
        return settings.direct_database_url
    stack = running_stack(settings.data_dir)
    if stack is None:
        raise CliError(NO_DATABASE)
    return stack.database_url

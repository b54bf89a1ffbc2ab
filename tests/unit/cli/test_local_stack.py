"""`.relai/stack.json`: written by `relai run`, read by the other commands, ignored once stale."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from services.cli._common import CliError
from services.cli.local_stack import (
    NO_DATABASE,
    LocalStack,
    database_url,
    remove_state,
    running_stack,
    state_path,
    this_process,
    write_state,
)
from services.cli.settings import CliSettings

DB = "postgresql://postgres@/relai?host=%2Fsrv%2Frelai%2Fpostgres"


def _mine() -> LocalStack:
    return this_process(database_url=DB, redis_url="redis://127.0.0.1:7/0", api_url="http://x")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> CliSettings:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("RELAI_DATABASE_URL", raising=False)
    return CliSettings(data_dir=data_dir)


def test_a_running_stack_is_found_and_gives_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_state(tmp_path, _mine())

    assert running_stack(tmp_path) == _mine()
    assert database_url(_settings(tmp_path, monkeypatch)) == DB
    assert state_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_database_url_wins_over_the_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_state(tmp_path, _mine())
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@db:5432/relai")

    assert database_url(CliSettings(data_dir=tmp_path)) == "postgresql://postgres@db:5432/relai"


def test_no_stack_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CliError, match="no DATABASE_URL and no running local stack"):
        database_url(_settings(tmp_path, monkeypatch))
    assert "make run" in NO_DATABASE


def test_a_dead_pid_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = _dead_pid()
    write_state(tmp_path, replace(_mine(), pid=dead))

    with pytest.raises(CliError):
        database_url(_settings(tmp_path, monkeypatch))
    assert f"(pid {dead}) is no longer running" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times come from /proc")
def test_a_reused_pid_is_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pid is alive, but it is another process than the one that wrote the file."""
    write_state(tmp_path, replace(_mine(), started="1"))

    assert running_stack(tmp_path) is None
    assert "no longer running" in capsys.readouterr().err


def test_an_unreadable_file_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_path(tmp_path).write_text("{not json")

    assert running_stack(tmp_path) is None
    assert "unreadable" in capsys.readouterr().err


def test_only_its_writer_removes_the_file(tmp_path: Path) -> None:
    write_state(tmp_path, _mine())

    remove_state(tmp_path, os.getpid() + 1)
    assert state_path(tmp_path).exists()
    remove_state(tmp_path, os.getpid())
    assert not state_path(tmp_path).exists()
    remove_state(tmp_path, os.getpid())  # already gone: nothing to do

"""``relai-api --workers N``: the processes get one shared metrics directory, made and removed
by ``relai-api``, or the operator's own, cleared of the last run's files."""

import os
from pathlib import Path

import pytest

from services.api.main import _shared_metrics

VAR = "PROMETHEUS_MULTIPROC_DIR"


def test_one_process_keeps_its_own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    with _shared_metrics(1):
        assert VAR not in os.environ


def test_several_processes_share_a_temporary_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    with _shared_metrics(3):
        directory = Path(os.environ[VAR])
        assert directory.is_dir()
        (directory / "counter_123.db").write_bytes(b"x")
    assert VAR not in os.environ
    assert not directory.exists()


def test_a_given_directory_is_cleared_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"stale")
    (given / "notes.txt").write_text("not ours")
    monkeypatch.setenv(VAR, str(given))
    with _shared_metrics(2):
        assert os.environ[VAR] == str(given)
        assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]
    assert given.is_dir()

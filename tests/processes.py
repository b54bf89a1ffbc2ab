"""Which processes a run started, and which of them outlived it."""

from __future__ import annotations

import time
from pathlib import Path

import psutil


def started_by(pid: int, workdir: Path) -> list[psutil.Process]:
    """The descendants of ``pid``, and the daemons that left its tree (the embedded Postgres and
    Valkey fork away) but work in ``workdir``: named in their command line or running there; with
    their own descendants (Postgres's backends)."""
    marker = str(workdir)
    found: dict[int, psutil.Process] = {}
    roots: list[psutil.Process] = []
    try:
        roots.append(psutil.Process(pid))
    except psutil.NoSuchProcess:
        pass
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        command = " ".join(proc.info["cmdline"] or ())
        if marker in command or (proc.info["cwd"] or "").startswith(marker):
            roots.append(proc)
    for root in roots:
        found[root.pid] = root
        try:
            found.update((child.pid, child) for child in root.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    found.pop(pid, None)
    return list(found.values())


def describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline()) or proc.name()}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def _alive(proc: psutil.Process) -> bool:
    """Running, and the same process (not a reused pid); a zombie counts as ended."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def survivors(processes: list[psutil.Process], *, within: float) -> list[psutil.Process]:
    """Those of ``processes`` still alive once ``within`` seconds have passed (or none are)."""
    deadline = time.monotonic() + within
    while (alive := [p for p in processes if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def kill_all(processes: list[psutil.Process]) -> None:
    for proc in processes:
        if _alive(proc):
            try:
                proc.kill()
            except psutil.Error:
                pass

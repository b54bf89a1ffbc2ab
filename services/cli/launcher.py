"""Process wiring for ``relai run``: start child processes the way a user would, watch them, and
stop them (SIGTERM, then SIGKILL after a timeout)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class LaunchError(Exception):
    pass


class StopRequested(BaseException):
    """Raised in the main thread when SIGINT or SIGTERM arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables of this child only, over the supervisor's."""


@dataclass(frozen=True)
class ChildExit:
    name: str
    returncode: int

    def describe(self) -> str:
        if self.returncode < 0:
            return f"{self.name} was killed by {signal.Signals(-self.returncode).name}"
        return f"{self.name} exited with status {self.returncode}"


def console_script(name: str) -> str:
    """The path of an installed console script: beside this interpreter (the project's virtual
    environment, activated or not), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise LaunchError(f"{name} is not installed (run `make install`)")
    return found


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class Supervisor:
    """Child processes, each in its own process group so that a signal reaches all it forked
    (uvicorn's worker processes, say) and so that a Ctrl-C at the terminal reaches only us."""

    def __init__(self, *, env: Mapping[str, str], stop_timeout: float) -> None:
        self._env = dict(env)
        self._stop_timeout = stop_timeout
        self._children: list[tuple[ChildSpec, subprocess.Popen[bytes]]] = []

    def start(self, spec: ChildSpec) -> None:
        try:
            process = subprocess.Popen(
                list(spec.argv), env={**self._env, **spec.env}, process_group=0
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {spec.name}: {exc}") from exc
        self._children.append((spec, process))

    @property
    def pids(self) -> dict[str, int]:
        return {spec.name: process.pid for spec, process in self._children}

    def exited(self) -> ChildExit | None:
        """The first child found to have exited, if any."""
        for spec, process in self._children:
            returncode = process.poll()
            if returncode is not None:
                return ChildExit(spec.name, returncode)
        return None

    def stop(self) -> list[str]:
        """Stop every child: SIGTERM, then SIGKILL once the timeout has passed. Returns the names
        of the children that had to be killed."""
        self._signal_running(signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        while time.monotonic() < deadline and self._running():
            time.sleep(0.05)
        killed = [spec.name for spec, process in self._children if process.poll() is None]
        self._signal_running(signal.SIGKILL)
        for _, process in self._children:
            process.wait()
        return killed

    def _running(self) -> bool:
        return any(process.poll() is None for _, process in self._children)

    def _signal_running(self, signum: signal.Signals) -> None:
        # Only children not yet reaped: their pid, hence their process group id, is still ours.
        for _, process in self._children:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signum)
                except ProcessLookupError:
                    pass


def wait_until_healthy(
    url: str,
    *,
    timeout: float,
    exited: Callable[[], ChildExit | None],
    interval: float = 0.2,
) -> None:
    """Return once ``url`` answers 200; fail if ``exited`` reports a dead child or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        child = exited()
        if child is not None:
            raise LaunchError(f"{child.describe()} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise LaunchError(f"{url} did not answer 200 within {timeout:g}s ({last})")
        time.sleep(interval)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise ``StopRequested``; the previous handlers come back after."""
    previous: dict[signal.Signals, Any] = {
        signum: signal.signal(signum, _raise_stop) for signum in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Inside (while cleaning up), SIGINT and SIGTERM are ignored so cleanup runs to its end."""
    previous: dict[signal.Signals, Any] = {
        signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

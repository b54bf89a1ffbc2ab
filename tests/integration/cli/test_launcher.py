"""The launcher's pieces, with real child processes and a real HTTP endpoint."""

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from services.cli.launcher import (
    ChildExit,
    ChildSpec,
    LaunchError,
    Supervisor,
    console_script,
    port_is_free,
    wait_until_healthy,
)
from services.cli.stack import Stack, banner

PY = sys.executable


def sleeper(name: str, code: str = "import time; time.sleep(600)") -> ChildSpec:
    return ChildSpec(name, [PY, "-c", code])


def wait_for_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for whoever reaps orphans here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_terminates_children_and_what_they_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    spawner = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(600)"
    )
    supervisor = Supervisor(env=os.environ, stop_timeout=5)
    supervisor.start(sleeper("one"))
    supervisor.start(sleeper("two", spawner))
    grandchild = int(wait_for_file(pidfile))
    assert supervisor.exited() is None

    started = time.monotonic()
    assert supervisor.stop() == []

    assert time.monotonic() - started < 5
    assert supervisor.exited() == ChildExit("one", -signal.SIGTERM)
    deadline = time.monotonic() + 5
    while alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild outlived its parent's group"
        time.sleep(0.05)


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(ready)!r}, 'w').write('1'); time.sleep(600)"
    )
    supervisor = Supervisor(env=os.environ, stop_timeout=0.5)
    supervisor.start(sleeper("polite"))
    supervisor.start(sleeper("stubborn", stubborn))
    wait_for_file(ready)

    assert supervisor.stop() == ["stubborn"]
    assert not any(alive(pid) for pid in supervisor.pids.values())


def test_exited_names_the_child_and_its_status() -> None:
    supervisor = Supervisor(env=os.environ, stop_timeout=5)
    supervisor.start(sleeper("relai-api"))
    supervisor.start(sleeper("relai-worker", "raise SystemExit(3)"))
    deadline = time.monotonic() + 10
    while (child := supervisor.exited()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    supervisor.stop()

    assert child == ChildExit("relai-worker", 3)
    assert child.describe() == "relai-worker exited with status 3"
    assert ChildExit("relai-api", -9).describe() == "relai-api was killed by SIGKILL"


def test_a_missing_program_is_a_launch_error() -> None:
    supervisor = Supervisor(env=os.environ, stop_timeout=1)
    with pytest.raises(LaunchError, match="cannot start ghost"):
        supervisor.start(ChildSpec("ghost", ["/nonexistent/relai-ghost"]))
    assert supervisor.stop() == []


class _Flaky(BaseHTTPRequestHandler):
    """503 for the first two calls, then 200."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        self.send_response(200 if type(self).calls > 2 else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _Flaky.calls = 0
    server = HTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def test_wait_until_healthy_waits_for_200(flaky_server: str) -> None:
    wait_until_healthy(flaky_server, timeout=10, exited=lambda: None, interval=0.01)
    assert _Flaky.calls == 3


def test_wait_until_healthy_gives_up_on_a_dead_child_or_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/health"

    with pytest.raises(LaunchError, match="relai-api exited with status 1 before"):
        wait_until_healthy(url, timeout=10, exited=lambda: ChildExit("relai-api", 1))
    with pytest.raises(LaunchError, match=r"did not answer 200 within 0.3s"):
        wait_until_healthy(url, timeout=0.3, exited=lambda: None, interval=0.05)


def test_port_is_free() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", port)


def test_console_scripts_are_found_beside_the_interpreter() -> None:
    assert console_script("relai-api") == str(Path(sys.executable).parent / "relai-api")
    with pytest.raises(LaunchError, match="relai-nope is not installed"):
        console_script("relai-nope")


def test_banner_has_ready_to_paste_commands() -> None:
    text = banner(
        Stack(
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8001",
            "http://127.0.0.1:8002",
            "demo",
            "rk_abc",
        )
    )

    assert "export KEY=rk_abc" in text
    assert "  http://127.0.0.1:8000/console\n" in text
    assert "http://127.0.0.1:8000/admin/ui" in text
    assert (
        """curl -H "Authorization: Bearer $KEY" -H 'content-type: application/json' """
        """-d '{"text":"hello"}' http://127.0.0.1:8000/svc/demo/echo"""
    ) in text
    assert 'curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8000/svc/request/<id>' in text
    assert 'websocat -H "Authorization: Bearer $KEY" ws://127.0.0.1:8000/ws/requests/<id>' in text
    assert "http://127.0.0.1:8001/health" in text
    assert "http://127.0.0.1:8002/health" in text

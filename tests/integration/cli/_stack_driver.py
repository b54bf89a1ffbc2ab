"""``relai run`` (``run_stack``) with stand-in children, for the tests.

The real api, worker, recon and dispatcher are tested on their own; here only the launcher is
under test: ``python -m tests.integration.cli._stack_driver`` runs ``run_stack`` with children
that are this same module in another mode (``api PORT``: answers ``/health`` and records its
environment; ``sleep``: waits; ``exit``: exits with FAKE_WORKER_STATUS after FAKE_WORKER_AFTER
seconds).
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from services.cli.launcher import ChildSpec
from services.cli.settings import CliSettings
from services.cli.stack import run_stack

MODULE = "tests.integration.cli._stack_driver"


def children(settings: CliSettings) -> list[ChildSpec]:
    worker_mode = "exit" if "FAKE_WORKER_STATUS" in os.environ else "sleep"
    return [
        ChildSpec("relai-api", [sys.executable, "-m", MODULE, "api", str(settings.api_port)]),
        ChildSpec("relai-worker", [sys.executable, "-m", MODULE, worker_mode]),
        ChildSpec("relai-recon", [sys.executable, "-m", MODULE, "sleep"]),
        ChildSpec("relai-dispatcher", [sys.executable, "-m", MODULE, "sleep"]),
    ]


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _api(port: int) -> None:
    record = {
        "pid": os.getpid(),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "RELAI_RECON_PORT": os.environ["RELAI_RECON_PORT"],
        "RELAI_DISPATCHER_PORT": os.environ["RELAI_DISPATCHER_PORT"],
    }
    Path(os.environ["FAKE_API_RECORD"]).write_text(json.dumps(record))
    HTTPServer(("127.0.0.1", port), _Health).serve_forever()


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "run"
    if mode == "api":
        _api(int(argv[1]))
    elif mode == "sleep":
        time.sleep(3600)
    elif mode == "exit":
        time.sleep(float(os.environ.get("FAKE_WORKER_AFTER", "0")))
        return int(os.environ["FAKE_WORKER_STATUS"])
    return run_stack(CliSettings(), children=children)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

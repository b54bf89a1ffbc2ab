"""A real S3 endpoint for the tests: moto's standalone server, started once per session as a
process of its own (``moto_server``), with a fresh bucket per test.

``S3Server.env`` is what an operator sets for an S3 store (``AWS_ENDPOINT_URL``, the credentials,
the region, ``AWS_ALLOW_HTTP`` for a plain-HTTP endpoint): ``libs.blobs.open_store`` reads it from
the environment, and the processes of the end-to-end tests are given it the same way."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.stack import free_port

_MOTO = Path(sys.executable).with_name("moto_server")
_buckets = itertools.count(1)


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "relai-test",
            "AWS_SECRET_ACCESS_KEY": "relai-test-secret",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self) -> str:
        """A new, empty bucket; returns its ``s3://`` URL."""
        name = f"relai-test-{os.getpid()}-{next(_buckets)}"
        # moto takes S3's CreateBucket unsigned: a PUT of the bucket's path.
        create = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(create, timeout=10) as answer:
            assert answer.status == 200, answer.status
        return f"s3://{name}"


@contextmanager
def moto_server(log: Path, *, timeout: float = 30.0) -> Iterator[S3Server]:
    """moto's S3 on a free local port, until the block ends (then stopped, and killed if it
    lingers)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(_MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited ({proc.returncode}): {log.read_text()}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"moto_server did not answer within {timeout:g}s") from None
                time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

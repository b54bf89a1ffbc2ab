import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ServerUrls

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Relai:
    """The installed ``relai`` executable, pointed at this test's database."""

    database_url: str

    def __call__(self, *args: str, **env: str) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(
            [str(BIN / "relai"), *args],
            env={**os.environ, "DATABASE_URL": self.database_url, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def relai(servers: ServerUrls) -> Relai:
    return Relai(servers.database_url)

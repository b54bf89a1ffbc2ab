"""``relai config ...`` on the test database: the whole cycle, refusals, keys, and no plaintext
secret in stored rows, listings or diffs."""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner, Result

from services.cli.main import app
from services.cli.settings import get_settings
from tests.integration.config.conftest import clear_config_tables
from tests.support import ServerUrls, create_user

SECRET = "sk-live-7c1d9e"
OTHER_SECRET = "sk-live-0f2a44"
BOOTSTRAP = """meta:
  source: postgres
  keys:
    - !ENV ${CFG_TEST_KEY}
    - !ENV ${CFG_TEST_OLD_KEY:-}
configs:
  worker: active
"""


@dataclass
class ConfigCli:
    database_url: str
    bootstrap: Path
    env: dict[str, str] = field(default_factory=dict)

    async def __call__(self, *args: str, **env: str) -> Result:
        def invoke() -> Result:
            get_settings.cache_clear()
            try:
                return CliRunner().invoke(
                    app,
                    ["config", *args],
                    env={
                        "DATABASE_URL": self.database_url,
                        "RELAI_CONFIG_FILE": str(self.bootstrap),
                        **self.env,
                        **env,
                    },
                )
            finally:
                get_settings.cache_clear()

        return await asyncio.to_thread(invoke)


@pytest.fixture
async def cfg(servers: ServerUrls, db_pool: "asyncpg.Pool[Any]", tmp_path: Path) -> ConfigCli:
    await clear_config_tables(db_pool)
    bootstrap = tmp_path / "config.yaml"
    bootstrap.write_text(BOOTSTRAP)
    key = Fernet.generate_key().decode()
    root = await create_user(db_pool, name="root", credits=0, role="admin")
    return ConfigCli(
        servers.database_url, bootstrap, {"CFG_TEST_KEY": key, "RELAI_ADMIN_KEY": root.api_key}
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    made = {}
    for name, prefix, secret in (("v1", "one", SECRET), ("v2", "two", OTHER_SECRET)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            "integrations:\n"
            "  openai:\n"
            "    base_url: !ENV ${CFG_TEST_BASE:-http://127.0.0.1:9}\n"
            f"    ~api_key: {secret}\n"
            "handlers:\n"
            "  echo.text:\n"
            f"    prefix: '{prefix} '\n"
            "    ^signing: bytes\n"
        )
        made[name] = path
    return made


async def _stored_text(pool: "asyncpg.Pool[Any]") -> str:
    rows = await pool.fetch(
        """SELECT v::text FROM config_versions v UNION ALL SELECT a::text FROM config_activations a
        UNION ALL SELECT c::text FROM configs c"""
    )
    return "\n".join(r[0] for r in rows)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_upload_list_show_diff_activate_rollback(
    cfg: ConfigCli, files: dict[str, Path], db_pool: "asyncpg.Pool[Any]"
) -> None:
    first = ok(await cfg("upload", str(files["v1"]), "--id", "worker", "--author", "ada"))
    assert first.startswith("uploaded worker version 1 (sha256:")
    second = ok(await cfg("upload", str(files["v2"]), "--id", "worker", "--version", "2.0"))
    assert "uploaded worker version 2.0" in second

    ok(await cfg("activate", "worker", "1"))
    ok(await cfg("activate", "worker", "2.0"))
    listing = ok(await cfg("list"))
    assert listing.startswith("worker  active 2.0  latest 2.0  2 version(s)")
    versions = ok(await cfg("list", "worker")).splitlines()
    assert versions[0].startswith("1  ")
    assert " ada  sha256:" in versions[0]
    assert versions[1].endswith("  active")

    shown = ok(await cfg("show", "worker"))
    assert "# worker version 2.0" in shown
    assert "~api_key: '********'" in shown
    assert "base_url: !ENV '${CFG_TEST_BASE:-http://127.0.0.1:9}'" in shown
    revealed = ok(await cfg("show", "worker", "--version", "1", "--reveal"))
    assert f"~api_key: {SECRET}" in revealed

    diff = ok(await cfg("diff", "worker", "1", "2.0"))
    assert "-    prefix: 'one '" in diff
    assert "+    prefix: 'two '" in diff
    assert "+    ~api_key: '******** (changed)'" in diff
    same = await cfg("diff", "worker", "1", "1")
    assert same.exit_code == 0
    assert "are the same" in same.stderr

    assert ok(await cfg("rollback", "worker")) == "worker: rolled back to version 1\n"
    assert await db_pool.fetchval("SELECT active_version FROM configs") == "1"
    refused = await cfg("rollback", "worker")
    assert refused.exit_code == 1
    assert "no earlier activation" in refused.stderr

    everything = listing + "".join(versions) + shown + diff + await _stored_text(db_pool)
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in everything


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("a: [1", {}, "bad.yaml is refused: not valid YAML"),
        ("handlers:\n  x: {}", {}, "not a valid 'worker' config: handlers.x"),
        ("handlers:\n  echo.text:\n    url: !ENV ${CFG_TEST_NOPE}", {}, "CFG_TEST_NOPE is not set"),
        ("a: 1", {"CFG_TEST_KEY": "not-a-key"}, "meta.keys[0] is not a Fernet key"),
        ("a: 1", {"CFG_TEST_KEY": ""}, "names no Fernet key"),
    ],
)
async def test_a_config_that_fails_to_load_is_refused_and_not_stored(
    cfg: ConfigCli,
    tmp_path: Path,
    db_pool: "asyncpg.Pool[Any]",
    content: str,
    env: dict[str, str],
    message: str,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = await cfg("upload", str(path), "--id", "worker", "--activate", **env)
    assert result.exit_code == 1
    assert message in result.stderr
    assert await db_pool.fetchval("SELECT count(*) FROM config_versions") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM configs") == 0


async def test_mistakes_are_clear_errors(cfg: ConfigCli, files: dict[str, Path]) -> None:
    ok(await cfg("upload", str(files["v1"]), "--id", "worker"))
    for args, message in [
        (("show", "worker"), "config 'worker' has no active version"),
        (("show", "nope", "--version", "1"), "no version '1' of config 'nope'"),
        (("activate", "worker", "7"), "no version '7' of config 'worker'"),
        (("upload", str(files["v2"]), "--id", "worker", "--version", "1"), "already has"),
        (("upload", "/nonexistent.yaml", "--id", "worker"), "cannot read /nonexistent.yaml"),
    ]:
        result = await cfg(*args)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)


async def test_a_wrong_key_is_refused_and_rotation_moves_every_version(
    cfg: ConfigCli, files: dict[str, Path], db_pool: "asyncpg.Pool[Any]"
) -> None:
    ok(await cfg("upload", str(files["v1"]), "--id", "worker"))
    ok(await cfg("upload", str(files["v2"]), "--id", "worker"))
    old = cfg.env["CFG_TEST_KEY"]
    new = Fernet.generate_key().decode()
    wrong = await cfg("show", "worker", "--version", "1", "--reveal", CFG_TEST_KEY=new)
    assert wrong.exit_code == 1
    assert "cannot decrypt the secret: the Fernet key is wrong" in wrong.stderr
    assert SECRET not in wrong.output

    before = await _stored_text(db_pool)
    rotated = await cfg("rotate-key", CFG_TEST_KEY=new, CFG_TEST_OLD_KEY=old)
    assert ok(rotated) == "re-encrypted 2 version(s) under the first key; older keys may now go\n"
    assert await _stored_text(db_pool) != before
    for version, secret in (("1", SECRET), ("2", OTHER_SECRET)):
        shown = ok(await cfg("show", "worker", "--version", version, "--reveal", CFG_TEST_KEY=new))
        assert f"~api_key: {secret}" in shown
    stale = await cfg("show", "worker", "--version", "2", "--reveal")
    assert stale.exit_code == 1
    assert "Fernet key is wrong" in stale.stderr


async def test_reveal_takes_an_admins_key_and_is_recorded(
    cfg: ConfigCli, files: dict[str, Path], db_pool: "asyncpg.Pool[Any]"
) -> None:
    ok(await cfg("upload", str(files["v1"]), "--id", "worker"))
    ada = await create_user(db_pool, name="ada", credits=0)
    gone = await create_user(db_pool, name="gone", credits=0, role="admin")
    await db_pool.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = $1", gone.id)
    refusals = [
        ("", "it needs an admin's API key (--admin-key, or RELAI_ADMIN_KEY)"),
        (ada.api_key, "--admin-key is not a live API key of an admin: nothing revealed"),
        (gone.api_key, "--admin-key is not a live API key of an admin: nothing revealed"),
        ("rk_made_up", "--admin-key is not a live API key of an admin: nothing revealed"),
    ]
    for key, message in refusals:
        refused = await cfg("show", "worker", "--version", "1", "--reveal", RELAI_ADMIN_KEY=key)
        assert refused.exit_code == 1, key
        assert message in refused.stderr
        assert SECRET not in refused.output
    assert "no secrets revealed yet" in (await cfg("reveals")).stderr

    shown = ok(await cfg("show", "worker", "--version", "1", "--reveal"))
    assert shown.splitlines()[0].endswith(", secrets revealed to root")
    assert f"~api_key: {SECRET}" in shown
    ok(await cfg("show", "worker", "--version", "1"))  # masked: not a reveal

    (line,) = ok(await cfg("reveals", "worker")).splitlines()
    assert line.endswith("  root  worker 1")
    assert ok(await cfg("reveals", "api")) == ""

"""Bootstrap configs: the store, the keys (read with !ENV) and the configs a component loads."""

from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet

from libs.config import ConfigError, open_store, read_bootstrap, seal_source

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("api.bootstrap", "worker.bootstrap", "recon.bootstrap")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_the_shipped_bootstrap_configs_read(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    for name in (*SERVICES, "bootstrap"):
        bootstrap = read_bootstrap(ROOT / "config" / f"{name}.yaml", {"RELAI_CONFIG_KEY": key})
        assert bootstrap.meta.source == "postgres"
        assert bootstrap.fernet().decrypt(Fernet(key).encrypt(b"x")) == b"x"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_follows_its_own_config_and_starts_without_a_key(name: str) -> None:
    """``relai run`` and compose point every service at its bootstrap: without
    ``RELAI_CONFIG_KEY`` it still reads (a config holding secrets is then refused by name)."""
    bootstrap = read_bootstrap(ROOT / "config" / f"{name}.yaml", {})
    assert bootstrap.configs == {name.split(".")[0]: "active"}
    assert not bootstrap.has_keys
    with pytest.raises(ConfigError, match="names no Fernet key"):
        bootstrap.fernet()


@pytest.mark.parametrize("config_id", ["api", "worker", "recon"])
def test_the_example_configs_are_valid(config_id: str) -> None:
    fernet = MultiFernet([Fernet(Fernet.generate_key())])
    text = (ROOT / "config" / f"{config_id}.example.yaml").read_text()
    sealed = seal_source(config_id, text, fernet, {})
    for secret in ("sk-replace-me", "discord.com/api/webhooks"):  # the ~ values, sealed
        assert secret not in sealed


def test_versions_are_text_and_keys_come_from_the_environment(tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    path = write(
        tmp_path,
        "meta:\n  source: mongo\n  collection: cfg\n"
        "  keys: [!ENV '${NEW}', !ENV '${OLD:-}', !ENV '${NONE:-}']\n"
        "configs:\n  api: 1.0\n  service_map: '1.10'\n  worker: active\n",
    )
    bootstrap = read_bootstrap(path, {"NEW": new.decode(), "OLD": old.decode()})
    assert bootstrap.configs == {"api": "1.0", "service_map": "1.10", "worker": "active"}
    assert (bootstrap.meta.source, bootstrap.meta.collection) == ("mongo", "cfg")
    fernet = bootstrap.fernet()
    assert fernet.decrypt(Fernet(old).encrypt(b"x")) == b"x"
    assert Fernet(new).decrypt(fernet.encrypt(b"y")) == b"y"  # the first key encrypts


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("meta: {keys: [!ENV '${K}']}", {}, "environment variable K is not set"),
        ("meta: {keys: [abc]}", {}, r"meta.keys\[0\] is not a Fernet key"),
        ("meta: {keys: []}", {}, "names no Fernet key"),
        ("meta: {source: redis}", {}, "meta.source: Input should be 'postgres' or 'mongo'"),
        ("configs: [a]", {}, "configs: Input should be a valid dictionary"),
    ],
)
def test_bad_bootstraps_are_clear_errors(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        read_bootstrap(write(tmp_path, text), environ).fernet()


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the bootstrap config .*nope.yaml"):
        read_bootstrap(tmp_path / "nope.yaml", {})


async def test_mongo_needs_its_url(tmp_path: Path) -> None:
    bootstrap = read_bootstrap(write(tmp_path, "meta: {source: mongo}"), {})
    with pytest.raises(ConfigError, match="meta.source is mongo, but MONGO_URL is not set"):
        async with open_store(bootstrap, database_url="postgresql://x/y", mongo_url=None):
            pass

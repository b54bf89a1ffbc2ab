"""``relai run`` points each service at its own bootstrap config, unless told otherwise; the
webhook dispatcher, which has no central config, runs on its environment alone."""

from pathlib import Path

import pytest

from libs.config import read_bootstrap
from services.cli.settings import CliSettings
from services.cli.stack import child_environment, default_children

ROOT = Path(__file__).resolve().parents[3]
FOLLOWING_CONFIGS = {"relai-api", "relai-worker", "relai-recon"}


def test_each_child_follows_its_own_central_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAI_CONFIG_FILE", raising=False)
    children = {child.name: child for child in default_children(CliSettings())}
    assert set(children) == FOLLOWING_CONFIGS | {"relai-dispatcher"}
    for name in FOLLOWING_CONFIGS:
        component = name.removeprefix("relai-")
        path = Path(children[name].env["RELAI_CONFIG_FILE"])
        assert path == ROOT / "config" / f"{component}.bootstrap.yaml"
        assert read_bootstrap(path, {}).configs == {component: "active"}
    assert children["relai-dispatcher"].env == {}
    assert Path(children["relai-dispatcher"].argv[0]).name == "relai-dispatcher"


def test_a_bootstrap_named_in_the_environment_holds_for_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAI_CONFIG_FILE", "/etc/relai/bootstrap.yaml")
    assert all(child.env == {} for child in default_children(CliSettings()))


def test_the_children_share_the_servers_and_learn_their_ports() -> None:
    settings = CliSettings(recon_port=9001, dispatcher_port=9002)
    env = child_environment(settings, database_url="postgresql://db/x", redis_url="redis://r/0")
    assert (env["DATABASE_URL"], env["REDIS_URL"]) == ("postgresql://db/x", "redis://r/0")
    assert (env["RELAI_RECON_PORT"], env["RELAI_DISPATCHER_PORT"]) == ("9001", "9002")

"""``relai run`` points each service at its own bootstrap config, unless told otherwise."""

from pathlib import Path

import pytest

from libs.config import read_bootstrap
from services.cli.settings import CliSettings
from services.cli.stack import default_children

ROOT = Path(__file__).resolve().parents[3]


def test_each_child_follows_its_own_central_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAI_CONFIG_FILE", raising=False)
    children = {child.name: child for child in default_children(CliSettings())}
    assert set(children) == {"relai-api", "relai-worker", "relai-recon"}
    for name, child in children.items():
        component = name.removeprefix("relai-")
        path = Path(child.env["RELAI_CONFIG_FILE"])
        assert path == ROOT / "config" / f"{component}.bootstrap.yaml"
        assert read_bootstrap(path, {}).configs == {component: "active"}


def test_a_bootstrap_named_in_the_environment_holds_for_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAI_CONFIG_FILE", "/etc/relai/bootstrap.yaml")
    assert all(child.env == {} for child in default_children(CliSettings()))

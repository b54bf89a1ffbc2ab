"""The import-linter contracts cover every package, so the layout cannot drift silently."""

import re
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _packages(parent: str) -> set[str]:
    return {
        f"{parent}.{p.name}"
        for p in (ROOT / parent).iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    }


def test_every_service_is_independent_of_the_others() -> None:
    contract = _contracts()["Services never import each other"]
    assert set(contract["modules"]) == _packages("services")


def test_contracts_may_import_no_other_lib() -> None:
    contract = _contracts()["Contracts import nothing of ours"]
    assert set(contract["forbidden_modules"]) == (_packages("libs") - {"libs.contracts"}) | {
        "services"
    }


def test_front_doors_sit_on_the_submission_core() -> None:
    contract = _contracts()[
        "Front doors submit through the one submission core, never through each other"
    ]
    assert contract["layers"] == [
        "services.api.requests | services.api.deals | services.api.openai",
        "services.api.submission",
    ]


def test_every_peer_module_is_kept_from_relai_s_code() -> None:
    """What runs in .venv-peers (bench/peers: all but the driver) imports nothing of Relai."""
    contract = _contracts()["The peer task queues' modules import nothing of Relai"]
    peers = {
        f"bench.peers.{p.stem}"
        for p in (ROOT / "bench" / "peers").glob("*.py")
        if p.stem not in {"__init__", "__main__", "driver"}
    }
    assert set(contract["source_modules"]) == peers


_OWNERS = {
    # What moves credits: a balance changed, a ledger row written.
    r"balance\s*=\s*(\w+\.)?balance\s*[-+]|INSERT INTO credit_ledger": "libs/ledger",
    # What queues work.
    r"INSERT INTO outbox": "libs/outbox",
}


def test_credits_and_tasks_have_one_owner_each() -> None:
    """Only ``libs/ledger`` writes SQL that moves credits; only ``libs/outbox`` inserts outbox
    rows. Every other module composes their fragments or calls their functions."""
    for pattern, owner in _OWNERS.items():
        found = {
            str(path.relative_to(ROOT).parent)
            for top in ("libs", "services")
            for path in (ROOT / top).rglob("*.py")
            if re.search(pattern, path.read_text(), re.IGNORECASE)
        }
        assert found == {owner}, pattern

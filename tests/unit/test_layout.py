"""The import-linter contracts cover every package, so the layout cannot drift silently."""

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

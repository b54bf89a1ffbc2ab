"""The console's and the admin panel's files, as shipped in the package: every file a page or a
module loads is one the API serves, none needs an inline script or style (the pages' CSP allows
neither), none writes the page from HTML text, and the credential is kept in sessionStorage
only."""

import re
import tomllib
from pathlib import Path

import pytest

from services.api.ui.pages import ASSETS, STATIC

ROOT = Path(__file__).resolve().parents[3]
PAGES = ("console.html", "admin.html")
SCRIPTS = sorted(name for name in ASSETS if name.endswith(".js"))


def test_every_served_asset_ships_in_the_package() -> None:
    shipped = {p.name for p in STATIC.iterdir()}
    assert set(ASSETS) | set(PAGES) == shipped
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert "services" in wheel["targets"]["wheel"]["packages"]  # with its non-Python files


@pytest.mark.parametrize("page", PAGES)
def test_pages_load_served_assets_and_nothing_inline(page: str) -> None:
    html = (STATIC / page).read_text()
    loaded = re.findall(r'(?:src|href)="\{root\}/ui/assets/([^"]+)"', html)
    assert loaded
    assert set(loaded) <= set(ASSETS)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handler
    assert "http://" not in html
    assert "https://" not in html


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_import_served_modules_and_never_parse_html(script: str) -> None:
    lines = (STATIC / script).read_text().splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith(("//", "/*", "*")))
    for imported in re.findall(r'from "\./([^"]+)"', code):
        assert imported in ASSETS
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert forbidden not in code
    assert "localStorage" not in code
    assert "style.cssText" not in code

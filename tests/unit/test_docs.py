"""The documentation stays true to the code: the settings reference is the one the settings
classes generate, and every relative link of the README and docs/ leads somewhere."""

import re
from pathlib import Path

import pytest

from tools import settings_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _prose(text: str) -> str:
    """``text`` without code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``."""
    seen: dict[str, int] = {}
    anchors = set()
    for title in HEADING.findall(FENCE.sub("", page.read_text())):
        slug = re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(_prose(page.read_text()))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


def test_settings_reference_is_generated_from_the_settings_classes() -> None:
    written = (ROOT / "docs" / "settings.md").read_text()
    assert written == settings_reference.render(), (
        "docs/settings.md differs from what the settings classes generate: run `make docs`"
    )


@pytest.mark.parametrize("process", settings_reference.PROCESSES, ids=lambda p: p.title)
def test_every_setting_is_described(process: settings_reference.Process) -> None:
    undescribed = [
        name for name, field in process.settings.model_fields.items() if not field.description
    ]
    assert not undescribed, f"give these fields of {process.module} a docstring: {undescribed}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_lead_to_files_and_headings_that_exist(page: Path) -> None:
    broken = []
    for target in _relative_links(page):
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.is_relative_to(ROOT):
            broken.append(f"{target} (outside the repository)")
        elif not destination.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and destination.suffix == ".md" and fragment not in _anchors(destination):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in _relative_links(ROOT / "README.md")
    }
    assert [p.name for p in DOCS if p not in linked] == []


def test_links_are_found() -> None:
    """The link pattern itself: links are found, code is not mistaken for links."""
    text = "See [the API](docs/api.md#calls), `[not](a-link.md)` and\n```\n[nor](this.md)\n```\n"
    assert LINK.findall(_prose(text)) == ["docs/api.md#calls"]

"""The docs site stays true: its pages are in the nav, its includes exist, its Python blocks run.

`mkdocs build --strict` itself runs in the `docs` nox session (CI runs it too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_readme import run_blocks

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MKDOCS = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
PAGES = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$', flags=re.MULTILINE)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    in_nav = set(re.findall(r":\s+([\w/-]+\.md)\s*$", MKDOCS, flags=re.MULTILINE))
    assert in_nav == set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_includes_name_existing_files_and_sections(page: str) -> None:
    for path, section in INCLUDE.findall((DOCS / page).read_text(encoding="utf-8")):
        target = ROOT / path
        assert target.is_file(), f"{page} includes {path}, which does not exist"
        if section:
            text = target.read_text(encoding="utf-8")
            assert f"--8<-- [start:{section}]" in text, f"{path} has no section {section!r}"
            assert f"--8<-- [end:{section}]" in text, f"{path} does not close section {section!r}"


def test_every_example_is_shown_on_the_examples_page() -> None:
    page = (DOCS / "examples.md").read_text(encoding="utf-8")
    for example in sorted((ROOT / "examples").iterdir()):
        if example.suffix in {".py", ".env"}:
            assert f'--8<-- "examples/{example.name}"' in page


def test_python_blocks_of_the_docs_run_against_the_fake_server(tmp_path: Path) -> None:
    # Blocks the docs include from the README run in tests/test_readme.py; these are the docs' own.
    blocks = [
        block
        for page in PAGES
        for block in re.findall(
            r"^```python\n(.*?)^```", (DOCS / page).read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE
        )
        if not block.startswith("--8<--")  # an example file shown on the Examples page
    ]
    assert len(blocks) >= 6
    result, requests = run_blocks(blocks, tmp_path, "Hi there from the docs.")
    assert result.stdout.count("Hi there from the docs.") >= 5
    assert "scripted reply" not in result.stdout  # the testing page asserts on it instead of printing
    assert requests >= 6

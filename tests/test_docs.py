"""The docs site stays true: its pages are in the nav, its includes exist, its Python blocks run.

`mkdocs build --strict` itself runs in the `docs` nox session (CI runs it too).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmcomm.testing import FakeServer, Script
from tests.helpers import KEY
from tests.test_readme import RUNNER

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
    with FakeServer(default=Script(text="Hi there from the docs.")) as server:
        env = {
            "PATH": str(tmp_path),  # no `claude` on PATH: the fake server is the only provider
            "HOME": str(tmp_path),
            "PYTHONIOENCODING": "utf-8",
            "ANTHROPIC_API_KEY": KEY,
            "ANTHROPIC_BASE_URL": server.anthropic_base_url,
        }
        result = subprocess.run(
            [sys.executable, "-c", RUNNER],
            input=json.dumps(blocks),
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.rstrip().endswith("--- all blocks ran")
    assert result.stdout.count("Hi there from the docs.") >= 5
    assert "scripted reply" not in result.stdout  # the testing page asserts on it instead of printing
    assert server.request_count >= 6

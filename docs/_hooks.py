"""MkDocs hook: the README sections the docs include link to repository files; point them at the docs' pages.

The README is read on GitHub, where `examples/flask_app.py` is a file; on the docs site it
is a section of the Examples page (which includes each file's source), and
`benchmarks/README.md` is the Benchmarks page.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

# Snippets are expanded while the Markdown is converted, so the links are rewritten in the HTML.
_LINK = re.compile(r'href="(examples/[\w.]+|benchmarks/README\.md|benchmarks/)"')


def anchor(path: str) -> str:
    """The id of an example's section on the Examples page (set in docs/examples.md)."""
    return re.sub(r"[^a-z0-9]+", "-", path.removeprefix("examples/").lower()).strip("-")


def _target(path: str) -> str:
    if path.startswith("benchmarks"):
        return "benchmarks/"
    return "examples/#" + anchor(path)


#: pictures the README shows from the benchmark results, copied into the site as they are
_PICTURE = re.compile(r'src="(benchmarks/results/[\w.-]+\.png)"')
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def on_page_content(html: str, page: Any, **_: Any) -> str:
    """Rewrite links to repository files into links to the pages that show them."""
    up = "../" * page.url.count("/")
    html = _PICTURE.sub(lambda match: f'src="{up}{match.group(1)}"', html)
    return _LINK.sub(lambda match: f'href="{up}{_target(match.group(1))}"', html)


def on_post_build(config: Any, **_: Any) -> None:
    """Copy the benchmark pictures the pages show next to them in the site."""
    target = Path(config["site_dir"]) / "benchmarks" / "results"
    target.mkdir(parents=True, exist_ok=True)
    for picture in RESULTS.glob("*.png"):
        shutil.copy2(picture, target / picture.name)

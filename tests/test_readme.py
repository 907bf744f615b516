"""README.md stays true: its Python blocks run against the fake server, its links and commands exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from llmcomm.testing import FakeServer, Script
from tests.helpers import KEY

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

QUICK_START = (
    "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/python examples/example.py",
    "python3 -m venv .venv && .venv/bin/pip install -q nox && .venv/bin/nox",
)

# Runs each block as its own `__main__` script, in order, in one interpreter (one SDK import).
RUNNER = textwrap.dedent(
    """
    import faulthandler, json, sys
    faulthandler.dump_traceback_later(50, exit=True)  # a hang shows where it hangs, before the test's timeout
    blocks = json.loads(sys.stdin.read())
    for number, code in enumerate(blocks, 1):
        print(f"--- README python block {number}", flush=True)
        exec(compile(code, f"README.md python block {number}", "exec"), {"__name__": "__main__"})
    print("--- all blocks ran", flush=True)
    """
)


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def test_quick_start_commands_are_verbatim() -> None:
    quick_start = section("Quick start")
    for command in QUICK_START:
        assert f"```bash\n{command}\n```" in quick_start


def run_blocks(blocks: list[str], tmp_path: Path, reply: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run `blocks` in one fresh interpreter against a fake server answering `reply`.

    The fake server is the only provider (no `claude` on PATH). Returns the
    process and how many requests reached the server.
    """
    with FakeServer(default=Script(text=reply)) as server:
        env = {
            "PATH": str(tmp_path),
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
        requests = server.request_count
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.rstrip().endswith("--- all blocks ran")
    return result, requests


def test_python_blocks_run_against_the_fake_server(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    result, requests = run_blocks(blocks, tmp_path, "Hi there from the README.")
    assert "Hi there from the README." in result.stdout
    assert "调用失败" not in result.stdout
    assert requests >= 5


def test_local_links_point_to_files() -> None:
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert links
    for link in links:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_every_example_and_variable_is_mentioned() -> None:
    for example in ("example.py", "example.env", "fastapi_app.py", "flask_app.py"):
        assert f"examples/{example}" in README
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section("Configuration"), flags=re.MULTILINE))
    env_file = (ROOT / "examples" / "example.env").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", env_file, flags=re.MULTILINE))
    # The two extra sign-in tokens are passed through to the `claude` child only.
    assert documented == listed - {"ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"}

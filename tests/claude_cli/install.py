#!/usr/bin/env python3
"""Install the real Claude Code CLI for the `real_cli` tests, once.

Run `python tests/claude_cli/install.py`: it installs the pinned npm package
`@anthropic-ai/claude-code` into `<repo>/.cache/claude-cli` (git-ignored) unless the
binary is already there, and prints the binary's path on its last line. When the pinned
version cannot be installed it falls back to an older one that also works on Node 20,
and says so. Nothing is downloaded when the CLI runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PINNED_VERSION = "2.1.331"
FALLBACK_VERSION = "2.1.197"
PACKAGE = "@anthropic-ai/claude-code"
REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = REPO_ROOT / ".cache" / "claude-cli"
#: how long one `npm install` may take (the package is a few hundred MB)
INSTALL_TIMEOUT = 1800.0


def candidates(prefix: Path = PREFIX) -> list[Path]:
    """Where the binary may be, best first (the native one when scripts were skipped)."""
    modules = prefix / "node_modules"
    return [
        modules / "@anthropic-ai" / "claude-code-linux-x64" / "claude",
        modules / ".bin" / "claude",
    ]


def works(path: Path) -> bool:
    """Whether `path` is an executable `claude` that answers `--version`."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        return False
    try:
        with tempfile.TemporaryDirectory(prefix="claude-cli-check-") as home:
            done = subprocess.run(
                [str(path), "--version"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
                cwd=home,
                env={"PATH": os.environ.get("PATH", ""), "HOME": home, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
            )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def find_binary(prefix: Path = PREFIX) -> Path | None:
    """The installed binary, or None."""
    return next((path for path in candidates(prefix) if works(path)), None)


def _npm_install(version: str) -> bool:
    npm = shutil.which("npm")
    if npm is None:
        print("npm is not on PATH; install Node.js 20+ and npm first", flush=True)
        return False
    PREFIX.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", f"{PACKAGE}@{version}"]
    print(f"running: {' '.join(argv)}", flush=True)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        print(f"npm install of {PACKAGE}@{version} took longer than {INSTALL_TIMEOUT:g} s", flush=True)
        return False
    if done.returncode != 0:
        print(f"npm install of {PACKAGE}@{version} failed with exit code {done.returncode}", flush=True)
        return False
    return True


def install() -> Path | None:
    """Install the CLI unless it is already there; return its path, or None."""
    found = find_binary()
    if found is not None:
        print(f"claude CLI already installed in {PREFIX}", flush=True)
        return found
    print(f"installing {PACKAGE}@{PINNED_VERSION} into {PREFIX}", flush=True)
    if _npm_install(PINNED_VERSION) and (found := find_binary()) is not None:
        return found
    print(f"{PACKAGE}@{PINNED_VERSION} did not give a working binary; falling back to {FALLBACK_VERSION}", flush=True)
    if _npm_install(FALLBACK_VERSION) and (found := find_binary()) is not None:
        return found
    return None


def main() -> int:
    found = install()
    if found is None:
        print("the claude CLI could not be installed", flush=True)
        return 1
    print(found, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

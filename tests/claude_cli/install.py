#!/usr/bin/env python3
"""Install the real Claude Code CLI for the `real_cli` tests, once.

Run `python tests/claude_cli/install.py`: it installs the pinned npm package
`@anthropic-ai/claude-code` into `<repo>/.cache/claude-cli` (git-ignored) unless the
binary is already there, and prints the binary's path on its last line. When the pinned
version cannot be installed it falls back to an older one that also works on Node 20,
and says so. Nothing is downloaded when the CLI runs.

`LLMCOMM_SKIP_REAL_CLI=1` skips the install and the `real_cli` tests (for a machine
without npm). Without npm and without that switch, it says so and exits 0, and the
`real_cli` tests skip with the same message; under `CI=true` both fail instead, because
CI must run the real binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PINNED_VERSION = "2.1.331"
FALLBACK_VERSION = "2.1.197"
PACKAGE = "@anthropic-ai/claude-code"
REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = REPO_ROOT / ".cache" / "claude-cli"
#: how long one `npm install` may take (the package is a few hundred MB)
INSTALL_TIMEOUT = 1800.0
#: how often a running install says it is still running
HEARTBEAT = 15.0
#: the switch that skips the install and the real-binary tests
SKIP_VARIABLE = "LLMCOMM_SKIP_REAL_CLI"


def skip_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether `LLMCOMM_SKIP_REAL_CLI` asks to skip the real-binary tests."""
    env = os.environ if environ is None else environ
    return env.get(SKIP_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def in_ci(environ: dict[str, str] | None = None) -> bool:
    """Whether this runs under CI (`CI=true`), where the real binary is required."""
    env = os.environ if environ is None else environ
    return env.get("CI", "").strip().lower() in ("1", "true", "yes")


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
    started = time.monotonic()
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL) as process:
        while True:
            try:
                process.wait(timeout=HEARTBEAT)
                break
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - started
                if elapsed > INSTALL_TIMEOUT:
                    process.kill()
                    print(f"npm install of {PACKAGE}@{version} took longer than {INSTALL_TIMEOUT:g} s", flush=True)
                    return False
                print(f"  still installing {PACKAGE}@{version} ({elapsed:.0f} s so far)", flush=True)
    done = process
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
    if skip_requested():
        print(f"{SKIP_VARIABLE} is set: the real claude CLI is not installed and its tests are skipped", flush=True)
        return 0
    print(
        f"the real-binary tests (marker real_cli) need the Claude Code CLI: {PACKAGE}@{PINNED_VERSION} from npm, "
        f"about 400 MB, installed once into {PREFIX} (git-ignored); set {SKIP_VARIABLE}=1 to skip them",
        flush=True,
    )
    found = install()
    if found is None:
        if in_ci():
            print("the claude CLI could not be installed, and CI must run the real binary", flush=True)
            return 1
        print(
            f"the claude CLI could not be installed: the real_cli tests will be skipped (set {SKIP_VARIABLE}=1 "
            "to skip them without trying)",
            flush=True,
        )
        return 0
    print(found, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

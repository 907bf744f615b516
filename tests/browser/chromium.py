"""Headless Chromium (Debian's `chromium` package) for the browser test."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

#: a hard bound on one browser run, whatever the page does
RUN_TIMEOUT = 60.0


def find_chromium() -> str:
    """The chromium executable; skips the test loudly when absent, and fails it under CI."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    message = "chromium is not installed: run `bash tests/browser/install_chromium.sh` (Debian's package)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install it before the tests")
    pytest.skip(message)


def dump_dom(url: str, *, virtual_time_budget_ms: int = 15_000) -> str:
    """Load `url` headless, let its scripts run, and return the serialised DOM."""
    executable = find_chromium()
    with tempfile.TemporaryDirectory(prefix="llmcomm-chromium-") as profile:
        argv = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={virtual_time_budget_ms}",
            "--dump-dom",
            url,
        ]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
            env={**os.environ, "HOME": profile},
        )
    if result.returncode != 0 or not result.stdout:
        raise AssertionError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout

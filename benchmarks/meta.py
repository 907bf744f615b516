"""What a run was measured on: machine, versions, load."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from typing import Any

PACKAGES = ("llmcomm", "httpx2", "httpcore2", "anyio", "trio", "orjson", "anthropic", "openai", "pydantic", "litellm")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_meta(*, after: bool = False) -> dict[str, Any]:
    """The machine, versions and load before a run (or, with `after`, the load after it)."""
    if after:
        return {"load_after": _load(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_before": _load(),
        "revision": _git_revision(),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "system": f"{platform.system()} {platform.release()}",
        },
        "versions": {name: version for name in PACKAGES if (version := _version(name)) is not None},
    }

"""The benchmark runner, at smoke size: it runs, measures every subject and writes its JSON.

Speed is reported by `python -m benchmarks`, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0


def test_smoke_run_exits_cleanly_and_writes_its_json(tmp_path: Path) -> None:
    target = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run: dict[str, Any] = orjson.loads(target.read_bytes())
    assert run["smoke"] is True
    assert run["errors"] == []
    for api in ("anthropic", "openai"):
        subjects = run["results"][api]
        assert {"socket", "raw-httpx2", "llmcomm"} <= subjects.keys()
        for measurement in ("single", "c100", "overhead", "ttft"):
            assert subjects["llmcomm"][measurement]["median"] > 0
        assert subjects["llmcomm"]["c1000"]["errors"] == {}
        assert run["failover"][api]["status_529"]["served_by"] == ["backup"]
    assert run["imports"]["llmcomm"]["sdk_modules_loaded"] == []
    assert {check["target"] for check in run["targets"]}
    assert "### Targets" in done.stdout

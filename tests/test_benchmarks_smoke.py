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
        assert {"socket", "raw-httpx2", "llmcomm", "llmcomm-trio"} <= subjects.keys()
        for subject in ("raw-httpx2", "llmcomm", "llmcomm-trio"):
            entry = subjects[subject]
            for measurement in ("single", "c100", "overhead", "ttft"):
                assert entry[measurement]["median"] > 0
            assert entry["single"]["cpu_per_event"]["median"] > 0
            assert entry["c1000"]["errors"] == {}
            assert entry["c1000"]["rss_per_stream"] is not None
            first_call = entry["first_call"]
            assert first_call["first"]["n"] == run["sizes"]["first_call_runs"]
            assert first_call["first"]["median"] > 0
            assert first_call["warm"]["median"] > 0
            for one in first_call["runs"]:  # each run in its own process in a real run
                assert one["added"] == one["first"] - one["warm"]
        assert run["failover"][api]["status_529"]["served_by"] == ["backup"]
    assert run["imports"]["llmcomm"]["sdk_modules_loaded"] == []
    measured = {check["target"]: check for check in run["targets"]}
    for label in ("first call after open", "CPU per streamed event", "RSS per open stream", "tiny request"):
        for subject in ("anthropic llmcomm", "openai llmcomm-trio"):
            (check,) = (c for name, c in measured.items() if name.startswith(f"{subject}: {label}"))
            assert check["met"] in (True, False), check
    assert "### Targets" in done.stdout
    assert "| first call us " in done.stdout


def test_the_full_sizes_are_the_ones_the_targets_name() -> None:
    # 1 stream x 20,000 tokens, 100 streams x 200 tokens, 1000 streams x 50 tokens (issue 15).
    check = "from benchmarks import measure, report; print(report.at_issue_sizes({'sizes': measure.FULL.as_dict()}))"
    smoke = "from benchmarks import measure, report; print(report.at_issue_sizes({'sizes': measure.SMOKE.as_dict()}))"
    for code, expected in ((check, "True"), (smoke, "False")):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=True
        )
        assert done.stdout.strip() == expected

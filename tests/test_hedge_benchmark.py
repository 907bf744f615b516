"""The hedging simulation at smoke size: it runs in seconds, in virtual time, and reports its targets.

The targets themselves are reported by `python -m benchmarks.hedging`, not asserted here,
except what the smoke size still shows: the budget holds in the outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


def test_hedging_smoke_run(tmp_path: Path) -> None:
    target = tmp_path / "hedging.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.hedging", "--smoke", "--no-plot", "--json", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run: dict[str, Any] = orjson.loads(target.read_bytes())
    assert run["smoke"] is True
    assert run["calls"] == 200
    assert set(run["summary"]) == {"fixed", "adaptive"}
    for numbers in run["summary"].values():
        assert 0 < numbers["p50"] <= numbers["p95"] <= numbers["p99"]
    assert run["outage_peak"]["fixed"] > 3 * run["outage_peak"]["adaptive"]  # fixed hedges every call of the outage
    assert run["checks"]["outage: adaptive 60 s share within the budget"]
    assert "| adaptive |" in done.stdout

"""Run the benchmarks: ``python -m benchmarks [--smoke] [--only NAME] [--json PATH]``.

Starts `benchmarks.server` in its own process, measures every subject in fresh
processes (`benchmarks.worker`), prints the tables and the targets, and writes
the whole run as JSON (default: ``benchmarks/results/<time>.json``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from . import measure, report
from .common import APIS, QUIET_ENV
from .meta import machine_meta
from .server import FRAMINGS, raise_file_limit
from .subjects import FLOOR, SERVER, SUBJECTS, available, get_subject

RESULTS = Path(__file__).parent / "results"
#: subjects a smoke run measures (the rest only cost start-up time there)
SMOKE_SUBJECTS = ("socket", FLOOR, "llmcomm", "llmcomm-trio", "openai-sdk", "anthropic-sdk")
MEASUREMENTS = ("stream", "c1000", "first", "import", "failover")
#: the longest one worker process may take
WORKER_TIMEOUT = 900.0
SERVER_START_TIMEOUT = 30.0


@contextmanager
def benchmark_server(framing: str = "events") -> Iterator[str]:
    """Start `benchmarks.server` in its own process, streaming with `framing`; yield its origin."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--port", "0", "--exit-with-parent", "--framing", framing],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = ""
        while time.monotonic() < deadline and not line.startswith("port="):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        if not line.startswith("port="):
            raise RuntimeError("the benchmark server did not start")
        yield f"http://127.0.0.1:{int(line.strip().removeprefix('port='))}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def run_workers(jobs: list[str], origin: str, smoke: bool) -> dict[str, dict[str, Any]]:
    """Run ``SUBJECT:API:TASK[:RUN]`` jobs in fresh processes; each job's JSON result (or the error it met).

    A real run gives every job its own process (clean memory, cold caches); a smoke
    run puts them all in one, since it checks the code, not the speed.
    """
    batches = [jobs] if smoke else [[job] for job in jobs]
    results: dict[str, dict[str, Any]] = {}
    env = {**os.environ, **QUIET_ENV}
    for batch in batches:
        if not batch:
            continue
        _log(f"measuring {', '.join(batch)}")
        command = [sys.executable, "-m", "benchmarks.worker", *batch, "--origin", origin]
        if smoke:
            command.append("--smoke")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT, env=env, check=False)
        except subprocess.TimeoutExpired:
            results.update({job: {"error": f"timed out after {WORKER_TIMEOUT:g} s"} for job in batch})
            continue
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            error = f"worker exited {done.returncode}: {done.stderr.strip()[-500:]}"
            results.update({job: {"error": error} for job in batch})
            continue
        results.update(orjson.loads(lines[-1]))
    return results


_IMPORT_PROBE = """
import sys, time
started = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
elapsed = time.perf_counter() - started
print(elapsed, " ".join(sorted(m for m in ("anthropic", "openai", "litellm") if m in sys.modules)))
"""


def measure_import(modules: tuple[str, ...], runs: int) -> dict[str, Any]:
    """Cold import time: each run a fresh interpreter (the bytecode cache and the OS file cache warm)."""
    samples: list[float] = []
    loaded: set[str] = set()
    env = {**os.environ, **QUIET_ENV}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, *modules],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=True,
        )
        seconds, _, names = done.stdout.strip().splitlines()[-1].partition(" ")
        samples.append(float(seconds))
        loaded.update(names.split())
    return {**measure.summary(samples), "modules": list(modules), "sdk_modules_loaded": sorted(loaded)}


#: what one first-call run measures (seconds; see `measure.first_call`)
_FIRST_CALL_KEYS = ("import", "open", "first", "warm", "added")


def first_call_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first-call runs of one subject (one fresh process each), summarised per quantity."""
    summary = {key: measure.summary([r[key] for r in runs if r.get(key) is not None]) for key in _FIRST_CALL_KEYS}
    return {**summary, "runs": runs}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    sizes = measure.SMOKE if args.smoke else measure.FULL
    only = set(args.only or ())
    subjects = [s for s in SUBJECTS if not only & set(SUBJECTS) or s in only]
    if args.smoke and not only:
        subjects = [s for s in subjects if s in SMOKE_SUBJECTS]
    for needed in (FLOOR, SERVER):  # ratios need the floor, and the server must be shown fast enough
        if needed not in subjects:
            subjects.insert(0, needed)
    measurements = [m for m in MEASUREMENTS if not only & set(MEASUREMENTS) or m in only]
    apis = [a for a in APIS if not args.api or a == args.api]
    run: dict[str, Any] = {
        "meta": machine_meta(),
        "smoke": args.smoke,
        "framing": args.framing,
        "sizes": sizes.as_dict(),
        "results": {api: {} for api in apis},
        "imports": {},
        "failover": {},
        "errors": [],
    }
    jobs: list[str] = []
    first_jobs: list[str] = []
    for api in apis:
        for name in subjects:
            if api not in get_subject(name).apis:
                continue
            if not available(name):
                run["results"][api][name] = {"unavailable": "not available (pip install -e .[bench])"}
                continue
            run["results"][api][name] = {}
            if "first" in measurements:
                first_jobs += [f"{name}:{api}:first:{i}" for i in range(sizes.first_call_runs)]
            jobs += [f"{name}:{api}:{task}" for task in ("stream", "c1000") if task in measurements]
    # First in the list: in a smoke run (one process for every job) the first call then
    # comes before the subject's other jobs; a real run gives each job its own process.
    jobs = first_jobs + jobs
    if "failover" in measurements and (not only & set(SUBJECTS) or "llmcomm" in only):
        jobs += [f"llmcomm:{api}:failover" for api in apis]
    with benchmark_server(args.framing) as origin:
        outcomes = run_workers(jobs, origin, args.smoke)
    first_runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for job, outcome in outcomes.items():
        name, job_api, task, *_ = job.split(":")
        if "error" in outcome:
            run["errors"].append(f"{job_api} {name} {task}: {outcome['error']}")
        if task == "failover":
            run["failover"][job_api] = outcome
            continue
        entry = run["results"][job_api][name]
        if task == "first":
            if "error" in outcome:
                entry["first_call"] = {"error": outcome["error"]}
            elif "error" not in entry.get("first_call", {}):
                first_runs.setdefault((job_api, name), []).append(outcome["first_call"])
            continue
        if "error" in outcome:
            entry["error"] = outcome["error"]
        elif task == "stream":
            entry.update(outcome)
        else:
            entry.update(c1000=outcome["c1000"], c1000_peak_rss=outcome["peak_rss"])
    for (job_api, name), runs in first_runs.items():
        entry = run["results"][job_api][name]
        if "error" not in entry.get("first_call", {}):
            entry["first_call"] = first_call_summary(runs)
    if "import" in measurements:
        seen: set[tuple[str, ...]] = set()
        for name in subjects:
            subject = get_subject(name)
            if name == SERVER or not available(name) or subject.imports in seen:
                continue
            if args.smoke and name not in ("llmcomm", FLOOR):
                continue  # a cold SDK import takes seconds; the smoke run only checks the probe works
            seen.add(subject.imports)
            _log(f"import {', '.join(subject.imports)}")
            run["imports"][name] = measure_import(subject.imports, sizes.import_runs)
    run["meta"].update(machine_meta(after=True))
    run["targets"] = report.targets(run)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds: checks the code, not speed")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"a subject ({', '.join(SUBJECTS)}) or a measurement ({', '.join(MEASUREMENTS)}); repeatable",
    )
    parser.add_argument("--api", choices=APIS, help="one API only")
    parser.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="events",
        help="how the server frames streams: events (one HTTP chunk per full event, like the real APIs; default) "
        "or bulk (the whole body in one chunk, the framing of the rounds before issue 15)",
    )
    parser.add_argument("--json", type=Path, help="where to write the run (default: benchmarks/results/<time>.json)")
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - set(SUBJECTS) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown --only {sorted(unknown)}; choose from {[*SUBJECTS, *MEASUREMENTS]}")
    raise_file_limit()
    run = run_all(args)
    print(report.render(run), flush=True)
    path = args.json or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}{'-smoke' if args.smoke else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(run, option=orjson.OPT_INDENT_2))
    print(f"wrote {path}", flush=True)
    return 1 if run["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

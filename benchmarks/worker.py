"""One subject, one API, one task, in a fresh process: ``python -m benchmarks.worker ...``.

Prints one JSON object on its last line of output. A fresh process per task
keeps resident memory clean and gives every measurement its own event loop.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, Literal

import anyio
import orjson

from . import measure
from .common import QUIET_ENV, Api, peak_rss_bytes, rss_bytes
from .server import raise_file_limit
from .subjects import get_subject

Task = Literal["stream", "c1000", "first", "failover"]
TASKS: tuple[Task, ...] = ("stream", "c1000", "first", "failover")


async def run_stream(name: str, api: Api, origin: str, sizes: measure.Sizes) -> dict[str, Any]:
    """Single stream, 100 streams, tiny-request overhead and time to first token."""
    subject = get_subject(name)
    client = await subject.open(api, origin)
    try:
        baseline = rss_bytes()
        result = {
            "single": await measure.single_stream(client, sizes),
            "c100": await measure.concurrent(client, *sizes.c100, sizes, reps=sizes.max_reps),
            "overhead": await measure.overhead(client, sizes),
            "ttft": await measure.time_to_first_token(client, sizes),
        }
    finally:
        await client.aclose()
    return {**result, "baseline_rss": baseline, "peak_rss": peak_rss_bytes()}


async def run_c1000(name: str, api: Api, origin: str, sizes: measure.Sizes) -> dict[str, Any]:
    """1000 streams open at once from one event loop and one client."""
    subject = get_subject(name)
    client = await subject.open(api, origin)
    try:
        baseline = rss_bytes()
        result = await measure.concurrent(client, *sizes.c1000, sizes, reps=min(3, sizes.max_reps))
    finally:
        await client.aclose()
    return {"c1000": result, "baseline_rss": baseline, "peak_rss": peak_rss_bytes()}


async def run_first(name: str, api: Api, origin: str, sizes: measure.Sizes) -> dict[str, Any]:
    """The first tiny request after opening the client, against the warm ones after it.

    The subject's modules are imported first (their import is measured on its own,
    in `python -m benchmarks`'s import probe), so what is left is what opening and
    the first call cost. In a real run this is the process's only job.
    """
    subject = get_subject(name)
    started = time.perf_counter()
    for module in subject.imports:
        importlib.import_module(module)
    imported = time.perf_counter() - started
    result = await measure.first_call(lambda: subject.open(api, origin), sizes)
    return {"first_call": {**result, "import": imported}}


async def run_failover(name: str, api: Api, origin: str, sizes: measure.Sizes) -> dict[str, Any]:
    from .failover import failover

    return await failover(api, sizes)


_RUNNERS = {"stream": run_stream, "c1000": run_c1000, "first": run_first, "failover": run_failover}


def run_job(job: str, origin: str, sizes: measure.Sizes) -> dict[str, Any]:
    """Run one ``SUBJECT:API:TASK[:RUN]`` job on its own event loop; its result, or the error it met.

    ``RUN`` only tells repeated jobs apart (the first-call job runs in several processes).
    """
    name, api, task, *run = job.split(":")
    if api not in ("anthropic", "openai") or task not in TASKS or len(run) > 1:
        raise SystemExit(f"bad job {job!r}: expected SUBJECT:anthropic|openai:{'|'.join(TASKS)}[:RUN]")
    backend = get_subject(name).backend if task != "failover" else "asyncio"
    started = time.perf_counter()
    try:
        result = anyio.run(_RUNNERS[task], name, api, origin, sizes, backend=backend)  # type: ignore[arg-type]
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
    result["seconds"] = time.perf_counter() - started
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("jobs", nargs="+", metavar="SUBJECT:API:TASK[:RUN]")
    parser.add_argument("--origin", default="", help="the benchmark server")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    os.environ.update(QUIET_ENV)
    raise_file_limit()
    sizes = measure.SMOKE if args.smoke else measure.FULL
    results = {job: run_job(job, args.origin, sizes) for job in args.jobs}
    sys.stdout.flush()
    print(orjson.dumps(results).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The targets of issue 15, checked against one run, and the tables printed from it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .common import APIS
from .subjects import FLOOR

#: issue 15's targets: llmcomm against the raw floor in the same run
TINY_RATIO = 1.3  # tiny request, at most this times the floor's
TTFT_ADDED = 0.0003  # seconds added to the time to first token, at most
FIRST_CALL_ADDED = 0.050  # seconds the first call after open may take over a warm call
SINGLE_RATIO = 0.9  # one long stream, tokens/s at least this times the floor's
CONCURRENT_RATIO = 0.8  # 100 and 1000 concurrent streams, the same
CPU_RATIO = 1.1  # CPU time per streamed event, at most this times the floor's
KIB_OVER_FLOOR = 10.0  # resident memory per open stream, at most the floor's plus this
IMPORT_SECONDS = 0.2
#: kept from issue 9: llmcomm against the openai SDK used directly, and failover
SDK_RATIO = 5.0
INSTANT_FAILOVER = 0.050
SILENT_FAILOVER = (1.9, 2.1)
#: the sizes issue 15's targets are stated for (`measure.FULL`)
ISSUE_SIZES = {"single_tokens": 20_000, "c100": [100, 200], "c1000": [1000, 50]}
SUBJECT = "llmcomm"
#: the subjects the targets are checked for (the trio one against the same asyncio floor)
TARGET_SUBJECTS = (SUBJECT, "llmcomm-trio")
SDK = "openai-sdk"


def _median(results: dict[str, Any], api: str, subject: str, measurement: str) -> float | None:
    entry = results.get(api, {}).get(subject, {}).get(measurement)
    if not isinstance(entry, dict):
        return None
    value = entry.get("median")
    return float(value) if isinstance(value, int | float) else None


def _nested_median(results: dict[str, Any], api: str, subject: str, *path: str) -> float | None:
    """The median at ``results[api][subject][path...]`` (None when it is missing)."""
    entry: Any = results.get(api, {}).get(subject, {})
    for key in path:
        entry = entry.get(key) if isinstance(entry, dict) else None
    value = entry.get("median") if isinstance(entry, dict) else None
    return float(value) if isinstance(value, int | float) else None


def cpu_per_event(results: dict[str, Any], api: str, subject: str) -> float | None:
    """Median CPU seconds per event of the single-stream measurement."""
    return _nested_median(results, api, subject, "single", "cpu_per_event")


def rss_per_stream(results: dict[str, Any], api: str, subject: str) -> float | None:
    """KiB of resident memory per open stream in the 1000-stream measurement."""
    value = results.get(api, {}).get(subject, {}).get("c1000", {}).get("rss_per_stream")
    return None if value is None else float(value) / 1024


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def _difference(value: float | None, reference: float | None, scale: float = 1.0) -> float | None:
    return None if value is None or reference is None else (value - reference) * scale


def _sizes(run: dict[str, Any]) -> tuple[str, str, str]:
    """How the run's three stream measurements are named: "1 stream x 20,000 tokens", ..."""
    sizes = {**ISSUE_SIZES, **run.get("sizes", {})}
    c100, c1000 = sizes["c100"], sizes["c1000"]
    return (
        f"1 stream x {sizes['single_tokens']:,} tokens",
        f"{c100[0]:,} streams x {c100[1]:,} tokens",
        f"{c1000[0]:,} streams x {c1000[1]:,} tokens",
    )


def at_issue_sizes(run: dict[str, Any]) -> bool:
    """Whether the run measured the sizes issue 15's targets are stated for."""
    sizes = run.get("sizes", {})
    return all(_plain(sizes.get(key)) == value for key, value in ISSUE_SIZES.items())


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met (None: not measured)."""
    results = run.get("results", {})
    checks: list[dict[str, Any]] = []
    single_label, c100_label, c1000_label = _sizes(run)

    def add(name: str, value: float | None, met: bool | None, unit: str = "") -> None:
        checks.append({"target": name, "value": value, "unit": unit, "met": met})

    for api in APIS:
        for subject in TARGET_SUBJECTS:
            if subject != SUBJECT and subject not in results.get(api, {}):
                continue  # the trio subject was not part of this run
            label = f"{api} {subject}"
            floor = {m: _median(results, api, FLOOR, m) for m in ("overhead", "ttft", "single", "c100", "c1000")}
            tiny = ratio(_median(results, api, subject, "overhead"), floor["overhead"])
            add(f"{label}: tiny request <= {TINY_RATIO:g}x raw floor", tiny, _at_most(tiny, TINY_RATIO), "x")
            added = _difference(_median(results, api, subject, "ttft"), floor["ttft"], 1e3)
            add(
                f"{label}: time to first token <= floor + {TTFT_ADDED * 1e3:g} ms",
                added,
                _at_most(added, TTFT_ADDED * 1e3),
                "ms over floor",
            )
            first = _nested_median(results, api, subject, "first_call", "added")
            shown = None if first is None else first * 1e3
            add(
                f"{label}: first call after open <= warm call + {FIRST_CALL_ADDED * 1e3:g} ms",
                shown,
                _at_most(first, FIRST_CALL_ADDED),
                "ms over warm",
            )
            for measurement, name, bound in (
                ("single", single_label, SINGLE_RATIO),
                ("c100", c100_label, CONCURRENT_RATIO),
                ("c1000", c1000_label, CONCURRENT_RATIO),
            ):
                to_floor = ratio(_median(results, api, subject, measurement), floor[measurement])
                add(f"{label}: tokens/s of {name} >= {bound:g}x raw floor", to_floor, _at_least(to_floor, bound), "x")
            cpu = ratio(cpu_per_event(results, api, subject), cpu_per_event(results, api, FLOOR))
            add(f"{label}: CPU per streamed event <= {CPU_RATIO:g}x raw floor's", cpu, _at_most(cpu, CPU_RATIO), "x")
            kib = _difference(rss_per_stream(results, api, subject), rss_per_stream(results, api, FLOOR))
            add(
                f"{label}: RSS per open stream ({c1000_label}) <= floor + {KIB_OVER_FLOOR:g} KiB",
                kib,
                _at_most(kib, KIB_OVER_FLOOR),
                "KiB over floor",
            )
            c1000 = results.get(api, {}).get(subject, {}).get("c1000", {})
            if c1000:
                errors = c1000.get("errors", {})
                pool = sum(n for name, n in errors.items() if "PoolTimeout" in name)
                add(f"{label}: {c1000_label}, no PoolTimeout or other error", pool, pool == 0 and not errors)
            if subject == SUBJECT:
                for measurement, name in (("single", single_label), ("c100", c100_label)):
                    to_sdk = ratio(
                        _median(results, api, subject, measurement), _median(results, "openai", SDK, measurement)
                    )
                    add(
                        f"{label}: tokens/s of {name} >= {SDK_RATIO:g}x openai SDK",
                        to_sdk,
                        _at_least(to_sdk, SDK_RATIO),
                        "x",
                    )
    imports = run.get("imports", {}).get(SUBJECT, {})
    seconds = imports.get("median")
    add(f"import llmcomm <= {IMPORT_SECONDS:g} s cold", seconds, _at_most(seconds, IMPORT_SECONDS), "s")
    loaded = imports.get("sdk_modules_loaded")
    add("import llmcomm loads neither SDK", None, None if loaded is None else not loaded)
    for api in APIS:
        failover = run.get("failover", {}).get(api, {})
        for case in ("status_529", "refused"):
            value = failover.get(case, {}).get("median")
            met = None if value is None else value < INSTANT_FAILOVER
            add(f"{api} llmcomm: failover after instant failure ({case}) < 50 ms", value, met, "s")
        silent = failover.get("silent", {})
        low, high = silent.get("min"), silent.get("max")
        in_range = None
        if low is not None and high is not None and silent.get("fallback_timeout") == 2.0:
            in_range = SILENT_FAILOVER[0] <= low and high <= SILENT_FAILOVER[1]
        add(f"{api} llmcomm: failover after a silent primary 2.0 +- 0.1 s", silent.get("median"), in_range, "s")
    return checks


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _at_most(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


# -- tables -----------------------------------------------------------------------


def _rate(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("median") is None:
        return "-"
    return f"{entry['median'] / 1000:,.1f}k ({entry['min'] / 1000:,.1f}-{entry['max'] / 1000:,.1f}k)"


def _micros(entry: dict[str, Any] | None, digits: int = 0) -> str:
    """A summary in seconds shown in microseconds: median (min-max)."""
    if not entry or entry.get("median") is None:
        return "-"
    return f"{entry['median'] * 1e6:,.{digits}f} ({entry['min'] * 1e6:,.{digits}f}-{entry['max'] * 1e6:,.{digits}f})"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    yield "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(header)) + " |"
    yield "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    for row in rows:
        yield "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |"


def throughput_table(run: dict[str, Any]) -> Iterator[str]:
    """Tokens/s: one stream (and its CPU per event), 100 and 1000 concurrent streams (and RSS per stream)."""
    results = run.get("results", {})
    sdk = {m: _median(results, "openai", SDK, m) for m in ("single", "c100", "c1000")}
    header = ["api", "subject", "1 stream tok/s", "x floor", "x openai-sdk", "CPU us/event", "x floor"]
    header += ["100 streams tok/s", "x floor", "x openai-sdk", "1000 streams tok/s", "x floor", "errors"]
    header += ["KiB/stream", "+ vs floor"]
    rows: list[list[str]] = []
    for api in APIS:
        for subject, entry in results.get(api, {}).items():
            if "error" in entry or entry.get("unavailable"):
                note = entry.get("unavailable") or "error: " + entry["error"][:60]
                rows.append([api, subject, note, *["-"] * (len(header) - 3)])
                continue
            row = [api, subject]
            for measurement in ("single", "c100", "c1000"):
                value = _median(results, api, subject, measurement)
                row += [_rate(entry.get(measurement)), _times(ratio(value, _median(results, api, FLOOR, measurement)))]
                if measurement != "c1000":
                    row.append(_times(ratio(value, sdk[measurement])))
                if measurement == "single":
                    cpu = (entry.get("single") or {}).get("cpu_per_event")
                    floor_cpu = cpu_per_event(results, api, FLOOR)
                    row += [_micros(cpu, 2), _times(ratio(cpu_per_event(results, api, subject), floor_cpu))]
            c1000 = entry.get("c1000") or {}
            errors = c1000.get("errors") or {}
            notes = [f"{n} {name}" for name, n in errors.items()]
            if c1000.get("all_open_together") is False:
                notes.append(f"never {c1000.get('streams')} open at once")
            row.append(", ".join(notes) or ("0" if c1000 else "-"))
            kib = rss_per_stream(results, api, subject)
            over = _difference(kib, rss_per_stream(results, api, FLOOR))
            row += ["-" if kib is None else f"{kib:.1f}", "-" if over is None else f"{over:+.1f}"]
            rows.append(row)
    yield from _table(header, rows)


def latency_table(run: dict[str, Any]) -> Iterator[str]:
    """Tiny request, time to first token, opening and the first call after it, import, memory; medians (min-max).

    The first call is timed in fresh processes with the subject's modules already
    imported: ``open ms`` is opening the client, ``first call us`` the first tiny
    request after it, ``+ vs warm us`` that minus the median of the calls after it.
    """
    results = run.get("results", {})
    imports = run.get("imports", {})
    header = ["api", "subject", "tiny request us", "x floor", "+ vs floor us", "first token us", "+ vs floor us"]
    header += ["open ms", "first call us", "+ vs warm us", "import s", "peak RSS MiB"]
    rows: list[list[str]] = []
    for api in APIS:
        for subject, entry in results.get(api, {}).items():
            if "error" in entry or entry.get("unavailable"):
                continue
            row = [api, subject]
            for measurement in ("overhead", "ttft"):
                value = _median(results, api, subject, measurement)
                floor = _median(results, api, FLOOR, measurement)
                added = _difference(value, floor, 1e6)
                row.append(_micros(entry.get(measurement)))
                if measurement == "overhead":
                    row.append(_times(ratio(value, floor)))
                row.append("-" if added is None else f"{added:+,.0f}")
            first_call = entry.get("first_call") or {}
            if "error" in first_call:
                row += ["error: " + first_call["error"][:40], "-", "-"]
            else:
                opened = first_call.get("open", {}).get("median")
                added = first_call.get("added", {}).get("median")
                row.append("-" if opened is None else f"{opened * 1e3:,.1f}")
                row += [_micros(first_call.get("first")), "-" if added is None else f"{added * 1e6:+,.0f}"]
            seconds = imports.get(subject, {}).get("median")
            row.append("-" if seconds is None else f"{seconds:.3f}")
            peaks = [entry.get("peak_rss"), entry.get("c1000_peak_rss")]
            peak = max((p for p in peaks if p), default=None)
            row.append("-" if peak is None else f"{peak / 2**20:.0f}")
            rows.append(row)
    yield from _table(header, rows)


def failover_table(run: dict[str, Any]) -> Iterator[str]:
    """llmcomm's time to the backup's first token, per fault."""
    header = ["api", "primary", "first token ms (min-max)", "served by", "runs"]
    rows: list[list[str]] = []
    for api, cases in run.get("failover", {}).items():
        if "error" in cases:
            rows.append([api, "error: " + cases["error"][:60], "-", "-", "-"])
            continue
        for case, entry in cases.items():
            if not isinstance(entry, dict) or entry.get("median") is None:
                continue
            timing = f"{entry['median'] * 1e3:,.1f} ({entry['min'] * 1e3:,.1f}-{entry['max'] * 1e3:,.1f})"
            rows.append([api, case, timing, ", ".join(entry.get("served_by", [])), str(entry["n"])])
    yield from _table(header, rows)


def imports_table(run: dict[str, Any]) -> Iterator[str]:
    header = ["module(s)", "cold import s (min-max)", "runs"]
    rows = []
    for subject, entry in run.get("imports", {}).items():
        if entry.get("median") is None:
            continue
        timing = f"{entry['median']:.3f} ({entry['min']:.3f}-{entry['max']:.3f})"
        rows.append([f"{subject}: import {', '.join(entry['modules'])}", timing, str(entry["n"])])
    yield from _table(header, rows)


def targets_table(run: dict[str, Any]) -> Iterator[str]:
    rows = []
    for check in run.get("targets", []):
        value = check["value"]
        shown = "-" if value is None else f"{value:.3f}{(' ' + check['unit']) if check['unit'] else ''}"
        met = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        rows.append([check["target"], shown, met])
    yield from _table(["target", "measured", ""], rows)


def render(run: dict[str, Any]) -> str:
    """The whole report, as Markdown."""
    meta = run.get("meta", {})
    lines = [f"## Benchmark run {meta.get('started', '')}", ""]
    machine = meta.get("machine", {})
    lines.append(
        f"{machine.get('cpus', '?')} CPUs ({machine.get('cpu_model', '?')}), Python {machine.get('python', '?')}, "
        f"load average {meta.get('load_before', '?')} before, {meta.get('load_after', '?')} after"
    )
    framing = run.get("framing", "bulk")  # runs from before the framing choice were all bulk
    lines.append(f"Streams framed `{framing}` (`python -m benchmarks --framing {framing}`)")
    versions = meta.get("versions", {})
    lines += [", ".join(f"{name} {version}" for name, version in versions.items()), ""]
    sections = (
        ("Throughput (tokens/s, median (min-max))", throughput_table),
        ("Latency, import and memory (median (min-max))", latency_table),
        ("Cold import", imports_table),
        ("Failover (llmcomm)", failover_table),
        ("Targets", targets_table),
    )
    for title, table in sections:
        lines += [f"### {title}", "", *table(run), ""]
        if table is targets_table and not at_issue_sizes(run):
            lines += ["Not the sizes the targets are stated for (see `benchmarks/measure.py` FULL): not a verdict.", ""]
    errors = run.get("errors", [])
    if errors:
        lines += ["### Errors", "", *(f"- {error}" for error in errors), ""]
    return "\n".join(lines)

"""The targets of issue 9, checked against one run, and the tables printed from it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .common import APIS
from .subjects import FLOOR

#: llmcomm's throughput against the raw floor, and against the openai SDK used directly
FLOOR_RATIO = 0.8
SDK_RATIO = 5.0
IMPORT_SECONDS = 0.6
INSTANT_FAILOVER = 0.050
SILENT_FAILOVER = (1.9, 2.1)
KIB_PER_STREAM = 50.0
SUBJECT = "llmcomm"
SDK = "openai-sdk"


def _median(results: dict[str, Any], api: str, subject: str, measurement: str) -> float | None:
    entry = results.get(api, {}).get(subject, {}).get(measurement)
    if not isinstance(entry, dict):
        return None
    value = entry.get("median")
    return float(value) if isinstance(value, int | float) else None


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def targets(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met (None: not measured)."""
    results = run.get("results", {})
    checks: list[dict[str, Any]] = []

    def add(name: str, value: float | None, met: bool | None, unit: str = "") -> None:
        checks.append({"target": name, "value": value, "unit": unit, "met": met})

    sdk_single = _median(results, "openai", SDK, "single")
    sdk_c100 = _median(results, "openai", SDK, "c100")
    for api in APIS:
        for measurement, label, sdk in (("single", "single-stream", sdk_single), ("c100", "100-stream", sdk_c100)):
            ours = _median(results, api, SUBJECT, measurement)
            to_floor = ratio(ours, _median(results, api, FLOOR, measurement))
            to_sdk = ratio(ours, sdk)
            add(f"{api}: {label} tokens/s >= {FLOOR_RATIO}x raw floor", to_floor, _at_least(to_floor, FLOOR_RATIO), "x")
            add(f"{api}: {label} tokens/s >= {SDK_RATIO:g}x openai SDK", to_sdk, _at_least(to_sdk, SDK_RATIO), "x")
    imports = run.get("imports", {}).get(SUBJECT, {})
    seconds = imports.get("median")
    add(
        f"import llmcomm <= {IMPORT_SECONDS} s cold",
        seconds,
        None if seconds is None else seconds <= IMPORT_SECONDS,
        "s",
    )
    loaded = imports.get("sdk_modules_loaded")
    add("import llmcomm loads neither SDK", None, None if loaded is None else not loaded)
    for api in APIS:
        failover = run.get("failover", {}).get(api, {})
        for case in ("status_529", "refused"):
            value = failover.get(case, {}).get("median")
            met = None if value is None else value < INSTANT_FAILOVER
            add(f"{api}: failover after instant failure ({case}) < 50 ms", value, met, "s")
        silent = failover.get("silent", {})
        low, high = silent.get("min"), silent.get("max")
        in_range = None
        if low is not None and high is not None and silent.get("fallback_timeout") == 2.0:
            in_range = SILENT_FAILOVER[0] <= low and high <= SILENT_FAILOVER[1]
        add(f"{api}: failover after a silent primary 2.0 +- 0.1 s", silent.get("median"), in_range, "s")
        c1000 = results.get(api, {}).get(SUBJECT, {}).get("c1000", {})
        if c1000:
            errors = c1000.get("errors", {})
            pool = sum(n for name, n in errors.items() if "PoolTimeout" in name)
            add(f"{api}: 1000 concurrent streams, no PoolTimeout", pool, pool == 0 and not errors)
            per_stream = c1000.get("rss_per_stream")
            kib = None if per_stream is None else per_stream / 1024
            add(
                f"{api}: 1000 concurrent streams < {KIB_PER_STREAM:g} KiB RSS each",
                kib,
                _below(kib, KIB_PER_STREAM),
                "KiB",
            )
    return checks


def _at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _below(value: float | None, bound: float) -> bool | None:
    return None if value is None else value < bound


# -- tables -----------------------------------------------------------------------


def _rate(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("median") is None:
        return "-"
    return f"{entry['median'] / 1000:,.1f}k ({entry['min'] / 1000:,.1f}-{entry['max'] / 1000:,.1f}k)"


def _micros(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("median") is None:
        return "-"
    return f"{entry['median'] * 1e6:,.0f} ({entry['min'] * 1e6:,.0f}-{entry['max'] * 1e6:,.0f})"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> Iterator[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    yield "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(header)) + " |"
    yield "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    for row in rows:
        yield "| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |"


def throughput_table(run: dict[str, Any]) -> Iterator[str]:
    """Tokens/s: one stream, 100 and 1000 concurrent streams; medians (min-max) and ratios."""
    results = run.get("results", {})
    sdk = {m: _median(results, "openai", SDK, m) for m in ("single", "c100", "c1000")}
    header = ["api", "subject", "1 stream tok/s", "x floor", "x openai-sdk", "100 streams tok/s", "x floor"]
    header += ["x openai-sdk", "1000 streams tok/s", "x floor", "errors", "KiB/stream"]
    rows: list[list[str]] = []
    for api in APIS:
        for subject, entry in results.get(api, {}).items():
            if "error" in entry or entry.get("unavailable"):
                rows.append([api, subject, entry.get("unavailable") or "error: " + entry["error"][:60], *["-"] * 9])
                continue
            row = [api, subject]
            for measurement in ("single", "c100", "c1000"):
                value = _median(results, api, subject, measurement)
                row += [_rate(entry.get(measurement)), _times(ratio(value, _median(results, api, FLOOR, measurement)))]
                if measurement != "c1000":
                    row.append(_times(ratio(value, sdk[measurement])))
            c1000 = entry.get("c1000") or {}
            errors = c1000.get("errors") or {}
            notes = [f"{n} {name}" for name, n in errors.items()]
            if c1000.get("all_open_together") is False:
                notes.append(f"never {c1000.get('streams')} open at once")
            row.append(", ".join(notes) or ("0" if c1000 else "-"))
            per_stream = c1000.get("rss_per_stream")
            row.append("-" if per_stream is None else f"{per_stream / 1024:.1f}")
            rows.append(row)
    yield from _table(header, rows)


def latency_table(run: dict[str, Any]) -> Iterator[str]:
    """Tiny-request time, time to first token, cold import and memory; medians (min-max)."""
    results = run.get("results", {})
    imports = run.get("imports", {})
    header = ["api", "subject", "tiny request us", "+ vs floor us", "first token us", "+ vs floor us"]
    header += ["import s", "peak RSS MiB"]
    rows: list[list[str]] = []
    for api in APIS:
        for subject, entry in results.get(api, {}).items():
            if "error" in entry or entry.get("unavailable"):
                continue
            row = [api, subject]
            for measurement in ("overhead", "ttft"):
                value = _median(results, api, subject, measurement)
                floor = _median(results, api, FLOOR, measurement)
                added = "-" if value is None or floor is None else f"{(value - floor) * 1e6:+,.0f}"
                row += [_micros(entry.get(measurement)), added]
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
    errors = run.get("errors", [])
    if errors:
        lines += ["### Errors", "", *(f"- {error}" for error in errors), ""]
    return "\n".join(lines)

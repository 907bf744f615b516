"""`llmcomm providers`: the provider chain detected from the environment, each one probed."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence

import anyio

from .._client import LLMCommunication
from .._config import Configuration, ProviderConfig
from .._errors import LLMException
from .._secrets import mask_secret, mask_url
from . import PROG

PROBE_PROMPT = "Reply with the single word: ok"


@dataclasses.dataclass(slots=True)
class _Probe:
    """The outcome of one provider's one-token request."""

    done: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    seconds: float = 0.0
    first_token: float | None = None
    reply: str = ""
    error: LLMException | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} providers",
        description=(
            "Show the providers detected from the environment (and ./.env), in fallback order, "
            "with API keys masked; then send each a one-token request and show its latency."
        ),
    )
    parser.add_argument("--no-probe", action="store_true", help="only show the chain; send no request")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="longest wait for each probe (default 30)"
    )
    return parser


def run_providers(argv: Sequence[str]) -> int:
    """`llmcomm providers [--no-probe] [--timeout S]`: 0 when every provider answered."""
    args = _parser().parse_args(argv)
    if args.timeout <= 0:
        _parser().error("--timeout must be positive")
    config = Configuration.from_env()
    config.require_providers()
    print(f"{len(config.providers)} provider(s), in fallback order:")
    rows = [_describe(position, entry) for position, entry in enumerate(config.providers, 1)]
    for line in _columns(rows):
        print(f"  {line}")
    print(
        f"a backup joins the race after {config.fallback_timeout:g} s without a first token; "
        f"one call may take {config.timeout:g} s at most"
    )
    if args.no_probe:
        return 0
    print("probing each with a one-token request:", flush=True)
    return anyio.run(_probe_all, config, args.timeout)


def _describe(position: int, entry: object) -> list[str]:
    if not isinstance(entry, ProviderConfig):
        name = getattr(entry, "name", type(entry).__name__)
        return [f"{position}.", str(name), "custom", type(entry).__name__, ""]
    where = []
    if entry.api_key:
        where.append(f"key {mask_secret(entry.api_key)}")
    if entry.base_url:
        where.append(mask_url(entry.base_url))
    if entry.cli_path:
        where.append(entry.cli_path)
    return [f"{position}.", entry.name, entry.kind, entry.model, "  ".join(where)]


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


async def _probe_all(config: Configuration, timeout: float) -> int:
    # A probe asks each provider once: no retries, no fallback to another.
    config = dataclasses.replace(config, max_retries=0, timeout=timeout)
    names = [entry.name for entry in config.providers]
    probes = {name: _Probe() for name in names}
    width = max(len(name) for name in names)
    async with LLMCommunication(config) as llm, anyio.create_task_group() as group:
        for name in names:
            group.start_soon(_probe, llm, name, probes[name])
        # Probes run at once; results are shown in chain order as each is known.
        for position, name in enumerate(names, 1):
            probe = probes[name]
            await probe.done.wait()
            if probe.error is None:
                first = f", first token {probe.first_token * 1000:.0f} ms" if probe.first_token is not None else ""
                detail = f"ok      {probe.seconds * 1000:.0f} ms{first}  {probe.reply!r}"
            else:
                message = " ".join(str(probe.error).split())
                detail = f"failed  {probe.seconds * 1000:.0f} ms  {type(probe.error).__name__}: {message}"
            print(f"  {position}. {name.ljust(width)}  {detail}", flush=True)
    failed = [name for name in names if probes[name].error is not None]
    if failed:
        print(f"{PROG}: {len(failed)} of {len(names)} provider(s) did not answer: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


async def _probe(llm: LLMCommunication, name: str, probe: _Probe) -> None:
    started = time.perf_counter()
    try:
        response = await llm.generate_response(PROBE_PROMPT, provider=name, max_tokens=1)
        probe.reply = response.content.strip()
        probe.first_token = response.time_to_first_token
    except LLMException as error:
        probe.error = error
    finally:
        probe.seconds = time.perf_counter() - started
        probe.done.set()

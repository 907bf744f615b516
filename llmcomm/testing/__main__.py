"""Run the fake provider server from the command line.

Usage::

    python -m llmcomm.testing --port 8080 [--host 127.0.0.1] [--text TEXT]
        [--tokens N] [--token-delay SECONDS]

Prints one line with both base URLs, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

import anyio

from ._script import Script
from ._server import FakeServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m llmcomm.testing",
        description="Loopback fake of the Anthropic Messages and OpenAI Chat Completions APIs.",
        epilog=(
            "It prints its addresses on start-up. Point llmcomm (or any client) at it with:\n"
            "  ANTHROPIC_BASE_URL=http://127.0.0.1:PORT       ANTHROPIC_API_KEY=any-non-empty-value\n"
            "  OPENAI_BASE_URL=http://127.0.0.1:PORT/v1       OPENAI_API_KEY=any-non-empty-value\n"
            "Keys are not checked, but a placeholder such as 'your-key' counts as no key to llmcomm."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: pick a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--text", default=None, help="reply text")
    parser.add_argument("--tokens", type=int, default=None, help="reply with N numbered tokens")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    return parser


async def _serve(host: str, port: int, script: Script) -> None:
    async with FakeServer(host=host, port=port, default=script) as server:
        print(
            f"anthropic_base_url={server.anthropic_base_url} openai_base_url={server.openai_base_url}",
            flush=True,
        )
        await anyio.sleep_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until Ctrl-C and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.tokens is not None and args.tokens < 0:
        parser.error("--tokens must be >= 0")
    if args.token_delay < 0:
        parser.error("--token-delay must be >= 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    script = Script(tokens=args.tokens, token_delay=args.token_delay)
    if args.text is not None:
        script = dataclasses.replace(script, text=args.text)
    try:
        # Validate the host before binding so a remote address is refused with a
        # clear message rather than a traceback.
        FakeServer(host=args.host)
    except ValueError as error:
        parser.error(
            f"refusing --host {args.host!r}: {error}; only loopback is allowed (the fake has no authentication)"
        )
    try:
        anyio.run(_serve, args.host, args.port, script)
    except KeyboardInterrupt:
        return 0
    except OSError as error:
        print(f"error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

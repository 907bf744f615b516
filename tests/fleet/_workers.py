"""Worker processes for the fleet tests: started together, asked over stdin, answered in JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

WORKERS = 8


def backend_of(index: int) -> str:
    """Half the workers on asyncio, half on trio."""
    return "asyncio" if index % 2 == 0 else "trio"


@contextmanager
def spawned(commands: Sequence[Sequence[str]], reap_within: float) -> Iterator[list[subprocess.Popen[str]]]:
    """One Python child per entry of `commands` (its script and arguments); each is reaped on the way out.

    Closing a child's stdin tells it to end; one still running `reap_within` seconds later is killed.
    """
    procs = [
        subprocess.Popen([sys.executable, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
            try:
                proc.wait(timeout=reap_within)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout:
                proc.stdout.close()


def answer(proc: subprocess.Popen[str]) -> Any:
    """The child's next JSON line (each child answers within its own time limits)."""
    stream: IO[str] | None = proc.stdout
    assert stream is not None
    line = stream.readline()
    assert line, f"worker {proc.pid} ended without answering (exit {proc.poll()})"
    return json.loads(line)


def ask(proc: subprocess.Popen[str], command: str) -> Any:
    """Send `command` on the child's stdin; its answer."""
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return answer(proc)

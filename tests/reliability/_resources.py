"""Leak detectors for the resource check that runs after every test.

Cheap when nothing leaked: a thread list comparison and one `waitid` call; the
`/proc` scan that names leaked children runs only when this process has children.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection
from pathlib import Path

#: threads that outlive a test on purpose: the sync facade's shared portal
LONG_LIVED_THREAD_NAMES = frozenset({"llmcomm-portal"})
#: how long a test's threads and children get to finish after it ended
GRACE = 1.0
_POLL = 0.005


def child_pids() -> frozenset[int]:
    """Pids of this process's children, zombies included."""
    try:
        # WNOWAIT: look, never reap; a child that is not ours to wait for stays waitable.
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return frozenset()  # the common case: no child at all, no scan needed
    me = str(os.getpid()).encode()
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 1 and fields[1] == me:
            found.add(int(entry.name))
    return frozenset(found)


def describe_child(pid: int) -> str:
    """`pid (state) command line`, as far as /proc still knows it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0].decode()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError):
        return f"{pid} (gone)"
    return f"{pid} ({state}) {argv or '?'}"


def new_threads(before: Collection[threading.Thread]) -> list[threading.Thread]:
    """Live non-daemon threads started since `before` was taken, long-lived ones aside."""
    return [
        thread
        for thread in threading.enumerate()
        if thread not in before
        and thread.is_alive()
        and not thread.daemon
        and thread.name not in LONG_LIVED_THREAD_NAMES
    ]


def leaks(threads_before: Collection[threading.Thread], children_before: frozenset[int]) -> list[str]:
    """What is left over, waiting up to `GRACE` for it to go; empty when clean."""
    deadline = time.monotonic() + GRACE
    while True:
        threads = new_threads(threads_before)
        children = child_pids() - children_before
        if not threads and not children:
            return []
        if time.monotonic() >= deadline:
            return [f"thread {t.name!r}" for t in threads] + [f"child process {describe_child(p)}" for p in children]
        time.sleep(_POLL)

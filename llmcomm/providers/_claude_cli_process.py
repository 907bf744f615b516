"""The `claude` child process: its scratch directory, its launch under a watchdog, its end.

Every child starts through a small watchdog (`python -I -S -c _LAUNCHER`), which leads
the child's own session and process group, runs the CLI as its child and exits with the
CLI's status (the same code, or killed by the same signal), so to the caller it behaves as
the CLI itself. It holds the read end of a pipe whose only write end stays in the calling
process; when that end closes before the CLI has exited, because the calling process died
(even by SIGKILL, when no `finally` runs) or its shutdown gave up, the watchdog kills the
CLI, removes the call's scratch directory and kills what is left of the process group.
Unlike a parent-death signal (`PR_SET_PDEATHSIG`), this does not depend on which thread
spawned the child: trio spawns children from a worker thread that may exit long before
the stream ends. The watchdog is the caller's child and the CLI the watchdog's, so each is
reaped by its parent, also where PID 1 reaps nothing (a container without an init).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, final

import anyio
from anyio.abc import Process

#: how long a child may take to exit after SIGTERM before it gets SIGKILL
TERM_GRACE = 1.0
#: how long the child may take to exit on its own once its stdout has ended
EXIT_GRACE = 1.0
#: the most any shutdown may take, however stuck the child is
SHUTDOWN_BOUND = 5.0
#: how much of the child's stderr is read back for an error message
STDERR_TAIL_BYTES = 4096
#: the prefix of every call's scratch directory under the temporary directory
SCRATCH_PREFIX = "llmcomm-claude-"

# argv: FD SCRATCH CLI ARGS... The watchdog ignores the polite signals a shutdown sends
# the group (the CLI gets them; the watchdog follows the CLI's exit), hands stdin and
# stdout to the CLI alone, and waits for whichever comes first: the CLI's exit (a pidfd,
# or a 50 ms poll where there is none) or EOF on the pipe.
_LAUNCHER = """\
import os, select, signal, sys
fd, scratch, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
POLITE = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE)
for sig in POLITE:
    signal.signal(sig, signal.SIG_IGN)
child = os.fork()
if child == 0:
    os.close(fd)
    for sig in POLITE:
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"cannot run {argv[0]}: {exc}\\n")
        sys.stderr.flush()
    os._exit(127)
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)
poller = select.poll()
poller.register(fd, select.POLLIN)
try:
    poller.register(os.pidfd_open(child), select.POLLIN)
    wait_ms = None
except (AttributeError, OSError):
    wait_ms = 50
status = None
while status is None:
    pid, code = os.waitpid(child, os.WNOHANG)
    if pid:
        status = code
    elif any(ready == fd for ready, _ in poller.poll(wait_ms)) and not os.read(fd, 512):
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)
        os.killpg(0, signal.SIGKILL)
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    if sig != signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


@final
class Workdir:
    """One call's private scratch directory: HOME, temp files and the child's stderr."""

    __slots__ = ("home", "root", "run", "stderr", "tmp")

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.run = root / "run"
        self.stderr = root / "stderr.log"

    @classmethod
    def create(cls) -> Workdir:
        workdir = cls(Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX)))
        for path in (workdir.home, workdir.tmp, workdir.run):
            path.mkdir(mode=0o700)
        return workdir

    @contextmanager
    def open_stderr(self) -> Iterator[Any]:
        # stderr goes to a file: the child can never block on a full pipe, and no task
        # has to drain it while the stream is being consumed.
        with self.stderr.open("wb") as file:
            yield file

    def write_system(self, text: str) -> Path:
        path = self.root / "system-prompt.txt"
        path.write_text(text, encoding="utf-8")
        return path

    def stderr_tail(self) -> str:
        """The last non-empty line of the child's stderr, read from its last few KiB."""
        try:
            with self.stderr.open("rb") as file:
                file.seek(max(0, file.seek(0, os.SEEK_END) - STDERR_TAIL_BYTES))
                tail = file.read()
        except OSError:
            return ""
        lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1][:500] if lines else ""

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@final
class Child:
    """A started CLI child and the write end of its watchdog's pipe (-1 without a watchdog)."""

    __slots__ = ("process", "watchdog_fd")

    def __init__(self, process: Process, watchdog_fd: int) -> None:
        self.process = process
        self.watchdog_fd = watchdog_fd

    def release_watchdog(self) -> None:
        """Close the pipe: the watchdog ends whatever is left of the child's group and exits."""
        fd, self.watchdog_fd = self.watchdog_fd, -1
        if fd >= 0:
            with suppress(OSError):
                os.close(fd)


def launcher() -> str | None:
    """The Python interpreter that runs the launcher; None where there is none (embedded, frozen)."""
    executable = sys.executable
    if getattr(sys, "frozen", False) or not executable or not os.access(executable, os.X_OK):
        return None  # a frozen application's executable is the application, not an interpreter
    return executable


async def spawn(argv: Sequence[str], env: Mapping[str, str], workdir: Workdir) -> Child:
    """Start `argv` in its own session under the watchdog (when an interpreter can run it).

    Raises what `anyio.open_process` raises (`OSError`, `ValueError`).
    """
    python = launcher()
    read_fd, write_fd = os.pipe() if python else (-1, -1)
    command = [python, "-I", "-S", "-c", _LAUNCHER, str(read_fd), str(workdir.root), *argv] if python else argv
    try:
        with workdir.open_stderr() as stderr:
            # Shielded: a cancellation while spawning must not lose the handle of a started child.
            with anyio.CancelScope(shield=True):
                process = await anyio.open_process(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    cwd=workdir.home,
                    env=env,
                    start_new_session=True,  # its own process group, so the whole group can be ended
                    pass_fds=(read_fd,) if python else (),
                )
    except BaseException:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        raise
    if read_fd >= 0:
        os.close(read_fd)
    return Child(process, write_fd)


async def shutdown(child: Child, *, exit_grace: float = 0.0, kill_now: bool = False) -> int | None:
    """End the child and its process group, reap it and close its pipes; its exit status.

    Shielded and bounded, so it completes on every path (cancellation included) and
    never leaves a zombie or an orphan: SIGTERM to the group, then after `TERM_GRACE`
    the watchdog is released (it SIGKILLs the CLI, reaps it and ends the group), and
    SIGKILL to the group if even that does not end it. `kill_now` skips the polite
    steps, for when even a brief grace could let the CLI send another request.
    """
    process = child.process
    with anyio.move_on_after(SHUTDOWN_BOUND, shield=True):
        if kill_now:
            _kill(child)
        if process.returncode is None and exit_grace > 0:
            with anyio.move_on_after(exit_grace):
                await process.wait()
        if process.returncode is None:
            signal_group(process, signal.SIGTERM)
            with anyio.move_on_after(TERM_GRACE):
                await process.wait()
        if process.returncode is None:
            _kill(child)
            with anyio.move_on_after(TERM_GRACE):
                await process.wait()
        if process.returncode is None:
            signal_group(process, signal.SIGKILL)
            await process.wait()
        with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await process.aclose()
    return process.returncode


def _kill(child: Child) -> None:
    """SIGKILL the CLI: through its watchdog, which reaps it, or to the whole group without one."""
    if child.watchdog_fd >= 0:
        child.release_watchdog()
    else:
        signal_group(child.process, signal.SIGKILL)


def signal_group(process: Process, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # the child leads its own group (start_new_session)
    except ProcessLookupError:
        pass
    except PermissionError:
        with suppress(ProcessLookupError):
            process.send_signal(sig)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "closed its output but did not exit"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"

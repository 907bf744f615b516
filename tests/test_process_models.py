"""The sync API under the process models servers use: fork, signal handlers, gevent, interpreter exit.

Each scenario runs in a child Python process (bounded by a timeout, killed after it)
against `llmcomm.testing.FakeServer` on 127.0.0.1 in this process. A child prints
one JSON line: what it saw and how long it took.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from llmcomm.testing import FakeServer, Script

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process models")

KEY = "sk-test-0123456789abcdef"
CHILD_LIMIT = 30.0

#: builds `config` in a child from WIRE and URL
PRELUDE = """
import json, os, sys, time
from llmcomm import Configuration, LLMException, ProviderConfig, SyncLLMCommunication
def make_config(**settings):
    wire = os.environ["WIRE"]
    return Configuration(providers=[ProviderConfig(name=wire, kind=wire, api_key=os.environ["KEY"],
                                                   base_url=os.environ["URL"], timeout=5)], **settings)
def report(**seen):
    print(json.dumps(seen), flush=True)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


def child_env(server: FakeServer, wire: Literal["anthropic", "openai"] = "anthropic", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "LLM_", "CLAUDE_"))}
    url = server.anthropic_base_url if wire == "anthropic" else server.openai_base_url
    env.update(WIRE=wire, URL=url, KEY=KEY, PYTHONUNBUFFERED="1", ENABLE_LLM_SPECIAL_LOG="false")
    env.update(extra)
    return env


def run_child(code: str, env: dict[str, str], *args: str, limit: float = CHILD_LIMIT) -> tuple[dict[str, Any], float]:
    """Run `code` in a fresh interpreter; its last JSON line and the seconds it took (the child is killed at `limit`)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the child was still running after {limit:g} s (a hang)")
    elapsed = time.monotonic() - started
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}: {out[-500:]} {err[-1500:]}"
    seen: dict[str, Any] = json.loads(lines[-1])
    return seen, elapsed


# -- fork ---------------------------------------------------------------------------------

FORK = """
import multiprocessing
from llmcomm import get_llm_service
how = sys.argv[1]
if how in ("legacy", "manager"):
    os.environ.update({"LLM_PROVIDERS": os.environ["WIRE"], os.environ["WIRE"].upper() + "_API_KEY": os.environ["KEY"],
                       os.environ["WIRE"].upper() + "_BASE_URL": os.environ["URL"]})
    service = get_llm_service()
    call = lambda: service.llm_call("hi")
if how == "manager":   # the legacy manager's new-event-loop-per-request pattern
    import asyncio
    from llmcomm import get_llm_manager
    def call():
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(get_llm_manager().generate_response(messages=[{"role": "user", "content": "hi"}])).content
        finally:
            loop.close()
if how in ("fork", "mp", "fresh"):
    llm = SyncLLMCommunication(make_config())
    call = lambda: llm.generate_text("hi") + "|" + "".join(c.text for c in llm.generate_stream("hi"))
parent = call() if how != "fresh" else "fresh"   # fresh: forked right after building, the portal still starting

def in_child(conn):
    started = time.monotonic()
    try:
        conn.send(("answered", call(), time.monotonic() - started))
    except Exception as exc:
        conn.send(("raised", f"{type(exc).__name__}: {exc}", time.monotonic() - started))

ctx = multiprocessing.get_context("fork")
results = []
for _ in range(2):   # two children, as a pre-forking server has workers
    if how == "mp":
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=in_child, args=(send,))
        proc.start()
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            results.append(("hung", "", 10.0))
        else:
            results.append(recv.recv())
    else:
        recv, send = multiprocessing.Pipe(duplex=False)
        pid = os.fork()
        if pid == 0:
            in_child(send)
            os._exit(0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not os.waitpid(pid, os.WNOHANG)[0]:
            time.sleep(0.05)
        else:
            if time.monotonic() >= deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        results.append(recv.recv() if recv.poll(0) else ("hung", "", 10.0))
after = call()   # the parent's portal is untouched
report(parent=parent, children=results, after=after)
"""


@pytest.mark.parametrize("wire", ["anthropic", "openai"])
@pytest.mark.parametrize("how", ["fork", "mp", "legacy", "manager", "fresh"])
def test_a_facade_made_before_fork_works_in_the_child(
    server: FakeServer, wire: Literal["anthropic", "openai"], how: str
) -> None:
    server.default = Script(text="forked fine")
    seen, _ = run_child(FORK, child_env(server, wire), how)
    expected = "forked fine" if how in ("legacy", "manager") else "forked fine|forked fine"
    assert seen["after"] == expected
    assert seen["parent"] in (expected, "fresh")
    for outcome, text, seconds in seen["children"]:
        assert (outcome, text) == ("answered", expected)
        assert seconds < 8.0  # a child opens its own connections (imports included, on a busy machine)


GUNICORN_APP = """
from flask import Flask
from llmcomm import get_llm_service

get_llm_service().llm_call("warm-up at import")   # in the master, with --preload
app = Flask(__name__)

@app.get("/")
def index():
    import os
    return {"pid": os.getpid(), "text": get_llm_service().llm_call("hi")}
"""


@pytest.mark.parametrize("worker", ["sync", "gthread", "gevent"])
def test_gunicorn_preload_two_workers(server: FakeServer, tmp_path: Path, worker: str) -> None:
    pytest.importorskip("gunicorn")
    if worker == "gevent":
        pytest.importorskip("gevent")
    pytest.importorskip("flask")
    import socket
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    server.default = Script(text="from a worker")
    (tmp_path / "app.py").write_text(GUNICORN_APP)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = child_env(
        server, ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=server.anthropic_base_url, LLM_PROVIDERS="anthropic"
    )
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    cmd = [
        gunicorn,
        "--preload",
        "-w",
        "2",
        "-k",
        worker,
        "--threads",
        "2",
        "-t",
        "20",
        "-b",
        f"127.0.0.1:{port}",
        "app:app",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def get(_: int) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=8) as reply:
            return json.loads(reply.read()), time.monotonic() - started

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get(0)
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not come up"
                time.sleep(0.2)
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(get, range(12)))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert {body["text"] for body, _ in replies} == {"from a worker"}
    assert max(seconds for _, seconds in replies) < 3.0
    assert len({body["pid"] for body, _ in replies}) >= 1


# -- signal handlers ----------------------------------------------------------------------

SIGNAL = """
import signal, threading
from llmcomm import shutdown_llm_services
when = sys.argv[1]
llm = SyncLLMCommunication(make_config())
seen = []
def handler(signum, frame):
    try:
        seen.append("handler: " + llm.generate_text("from the handler"))
    except LLMException as exc:
        seen.append("handler typed: " + str(exc)[:60])
signal.signal(signal.SIGALRM, handler)
started = time.monotonic()
if when == "warm":
    llm.generate_text("warm up")
if when == "shutdown":
    llm.generate_text("warm up")
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    shutdown_llm_services()
    time.sleep(0.2)
else:
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    seen.append("main: " + llm.generate_text("slow call", model="slow"))
llm.close()
report(seen=seen, seconds=time.monotonic() - started)
"""


@pytest.mark.parametrize("when", ["cold", "warm", "shutdown"])
def test_a_signal_handler_may_call_the_facade(server: FakeServer, when: str) -> None:
    server.default = Script()
    server.route(model="slow", script=Script(text="slow", delay_before_first_token=0.8))
    seen, _ = run_child(SIGNAL, child_env(server), when)
    handler = [s for s in seen["seen"] if s.startswith("handler")]
    assert len(handler) == 1, seen
    if when == "shutdown":
        assert handler[0].startswith(("handler: Hello", "handler typed:")), seen
    else:
        assert handler == ["handler: Hello from llmcomm.testing."], seen
        assert "main: slow" in seen["seen"]
    assert seen["seconds"] < 10.0  # the cold case includes opening the connections (SDK imports)


# -- gevent -------------------------------------------------------------------------------

GEVENT = """
import_first = sys.argv[1] == "imported-first"
from gevent import monkey
if not import_first:
    monkey.patch_all()
import llmcomm
if import_first:
    monkey.patch_all()
import asyncio
import gevent

async def unrelated():
    await asyncio.sleep(0)
    return "ok"

def loop_per_request():
    from llmcomm import get_llm_manager
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(get_llm_manager().generate_response(messages=[{"role": "user", "content": "hi"}])).content
    finally:
        loop.close()

os.environ.update(LLM_PROVIDERS="anthropic", ANTHROPIC_API_KEY=os.environ["KEY"], ANTHROPIC_BASE_URL=os.environ["URL"])
llm = SyncLLMCommunication(make_config())
sync = [g.get(timeout=10) for g in [gevent.spawn(llm.generate_text, "hi") for _ in range(3)]]
after = [gevent.spawn(asyncio.run, unrelated()).get(timeout=10) for _ in range(3)]  # one loop per OS thread at a time
legacy = gevent.spawn(loop_per_request).get(timeout=10)
stream = gevent.spawn(lambda: "".join(c.text for c in llm.generate_stream("hi"))).get(timeout=10)
llm.close()
report(sync=sync, after=after, legacy=legacy, stream=stream)
"""


@pytest.mark.parametrize("order", ["patched-first", "imported-first"])
def test_gevent_keeps_asyncio_run_working_in_every_greenlet(server: FakeServer, order: str) -> None:
    pytest.importorskip("gevent")
    server.default = Script(text="Hello from llmcomm.testing.")
    seen, _ = run_child(GEVENT, child_env(server), order)
    assert seen["sync"] == ["Hello from llmcomm.testing."] * 3
    assert seen["after"] == ["ok"] * 3
    assert seen["legacy"] == "Hello from llmcomm.testing."
    assert seen["stream"] == "Hello from llmcomm.testing."


# -- interpreter exit ---------------------------------------------------------------------

TEARDOWN = """
import atexit
how = sys.argv[1]
class Flusher:
    def __init__(self):
        self.llm = SyncLLMCommunication(make_config())
    def flush(self):
        started = time.monotonic()
        try:
            print(json.dumps({"reply": self.llm.generate_text("bye"), "seconds": time.monotonic() - started}), flush=True)
        except LLMException as exc:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc), "seconds": time.monotonic() - started}), flush=True)
    def __del__(self):
        self.flush()
if how.startswith("atexit"):
    flusher = Flusher()
    atexit.register(flusher.flush)
    del Flusher.__del__
if how.endswith("used"):
    SyncLLMCommunication(make_config()).generate_text("hi")
if not how.startswith("atexit"):
    flusher = Flusher()
"""


@pytest.mark.parametrize("how", ["del-cold", "del-used", "atexit-cold", "atexit-used"])
def test_a_call_during_interpreter_exit_fails_at_once(server: FakeServer, how: str) -> None:
    seen, elapsed = run_child(TEARDOWN, child_env(server), how, limit=20)
    assert seen.get("error") == "LLMException", seen
    assert "interpreter is finalizing" in seen["message"]
    assert seen["seconds"] < 0.5
    assert elapsed < 10.0


EVENTLET = """
import warnings
warnings.simplefilter("ignore")
import eventlet
eventlet.monkey_patch()
import asyncio
llm = SyncLLMCommunication(make_config())
started = time.monotonic()
try:
    outcome = "answered " + eventlet.spawn(llm.generate_text, "hi").wait()
except LLMException as exc:
    outcome = f"{type(exc).__name__}: {exc}"
seconds = time.monotonic() - started
async def unrelated():
    return "ok"
report(outcome=outcome, seconds=seconds, after=eventlet.spawn(asyncio.run, unrelated()).wait())
"""


def test_eventlet_gets_a_configuration_error_saying_why(server: FakeServer) -> None:
    # Looked up, not imported: importing eventlet here would register its at-fork warning in
    # the test process, and every later fork in the suite would raise it.
    if importlib.util.find_spec("eventlet") is None:
        pytest.skip("eventlet is not installed")
    seen, _ = run_child(EVENTLET, child_env(server))
    assert seen["outcome"].startswith("ConfigurationError: llmcomm's sync API cannot run in a process eventlet")
    assert "gevent" in seen["outcome"]
    assert seen["seconds"] < 0.5
    assert seen["after"] == "ok"

"""A Flask app under gunicorn with 4 sync workers, each with its own `SimpleLLMService`
(`llmcomm.legacy`), shares one breaker through Redis (`LLM_SHARED_STATE_URL`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from llmcomm.testing import FakeServer, Script

from .conftest import RedisServer

APP = """
import os
from flask import Flask
from llmcomm.legacy import SimpleLLMService

service = SimpleLLMService()
app = Flask(__name__)

@app.get("/up")
def up():
    return {"pid": os.getpid()}

@app.get("/")
def index():
    return {"pid": os.getpid(), "text": service.llm_call("hi")}
"""

KEY = "sk-fleet-gunicorn-0123456789"
WORKERS = 4
CALLS = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.timeout(120)
def test_four_gunicorn_workers_share_the_breaker(redis: RedisServer, tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("flask")
    seed = uuid.uuid4().hex[:12]
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    with FakeServer() as server:
        server.route(model=f"bad-{seed}", script=Script(status=500))
        server.route(model=f"good-{seed}", script=Script(text="from backup"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "LLM_", "CLAUDE_"))}
        env.update(
            LLM_PROVIDERS="anthropic,openai",
            ANTHROPIC_API_KEY=KEY,
            ANTHROPIC_BASE_URL=server.anthropic_base_url,
            ANTHROPIC_MODEL=f"bad-{seed}",
            OPENAI_API_KEY=KEY,
            OPENAI_BASE_URL=server.openai_base_url,
            OPENAI_MODEL=f"good-{seed}",
            LLM_SHARED_STATE_URL=redis.url,
            ENABLE_LLM_SPECIAL_LOG="false",
            PYTHONUNBUFFERED="1",
        )
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        argv = [gunicorn, "-w", str(WORKERS), "-k", "sync", "-t", "30", "-b", f"127.0.0.1:{port}", "app:app"]
        proc = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

        def get(path: str) -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as reply:
                body: dict[str, Any] = json.loads(reply.read())
                return body

        try:
            deadline = time.monotonic() + 30
            for _ in range(300):
                try:
                    get("/up")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "gunicorn did not come up"
                    time.sleep(0.1)
            time.sleep(1.0)  # every worker has imported the app and reached Redis
            replies = []
            for _ in range(CALLS):  # one call every 0.3 s: the breaker's news reaches every worker between two
                replies.append(get("/"))
                time.sleep(0.3)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        bad = [r for r in server.requests if r.model == f"bad-{seed}"]
    assert [r["text"] for r in replies] == ["from backup"] * CALLS
    # three failures in the whole app open the breaker for every worker (per worker: up to 12)
    assert 3 <= len(bad) <= 4, (len(bad), sorted({r["pid"] for r in replies}))

"""examples/flask_app.py through Flask's test client, against the fake provider server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from examples import flask_app
from llmcomm import SyncLLMCommunication
from llmcomm.testing import FakeServer, Script
from tests.helpers import config, provider


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A threaded fake provider server (Flask's views are blocking)."""
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def app(server: FakeServer) -> Iterator[Flask]:
    app = flask_app.create_app(config(provider(server)))
    yield app
    llm: SyncLLMCommunication = app.extensions["llmcomm"]
    llm.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_stream_returns_the_reply_as_plain_text(server: FakeServer, client: FlaskClient) -> None:
    server.default = Script(chunks=("Hello", ", ", "Flask", "!"))
    response = client.get("/stream", query_string={"prompt": "hi", "max_tokens": "30"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Hello, Flask!"
    assert server.requests[0].body["max_tokens"] == 30
    assert server.requests[0].stream


def test_stream_arrives_incrementally_and_closing_it_closes_upstream(server: FakeServer, client: FlaskClient) -> None:
    server.default = Script(tokens=200, token_delay=0.02)
    response = client.get("/stream", query_string={"prompt": "count"}, buffered=False)
    parts = response.iter_encoded()
    received = [next(parts) for _ in range(3)]
    assert received == [b"tok0 ", b"tok1 ", b"tok2 "]
    closed_at = time.monotonic()
    response.close()
    upstream = server.requests[0]
    assert wait_until(lambda: upstream.client_closed_at is not None, timeout=1.0), "upstream still open"
    assert upstream.client_closed_at is not None
    assert upstream.client_closed_at - closed_at < 1.0
    assert upstream.finished_at is None


def test_failure_before_the_first_token_is_an_http_error(server: FakeServer, client: FlaskClient) -> None:
    server.default = Script(status=401, error_message="invalid x-api-key")
    response = client.get("/stream", query_string={"prompt": "hi"})
    assert response.status_code == 502
    body = response.json
    assert body is not None
    assert set(body) == {"error", "detail"}
    assert body["error"] == "AuthenticationError"
    assert "invalid x-api-key" in body["detail"]


def test_bad_input_is_refused_before_any_request(server: FakeServer, client: FlaskClient) -> None:
    empty = client.get("/stream", query_string={"prompt": ""})
    bad_number = client.get("/stream", query_string={"prompt": "hi", "max_tokens": "many"})
    assert empty.status_code == 400
    assert empty.json is not None
    assert empty.json["error"] == "InvalidRequestError"
    assert bad_number.status_code == 400
    assert server.requests == []


def test_interruption_mid_stream_ends_the_body_with_a_note(server: FakeServer, client: FlaskClient) -> None:
    server.default = Script(chunks=("one ", "two ", "three "), reset_after=2)
    text = client.get("/stream", query_string={"prompt": "hi"}).get_data(as_text=True)
    assert text.startswith("one two ")
    assert "[the reply was cut off:" in text


def test_generate_returns_json(server: FakeServer, client: FlaskClient) -> None:
    server.default = Script(text="A whole reply.")
    response = client.post("/generate", json={"prompt": "hi", "system": "Be brief."})
    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert body["content"] == "A whole reply."
    assert body["provider"] == "anthropic"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert server.requests[0].body["system"] == "Be brief."


def test_without_credentials_the_app_uses_the_simulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "CLAUDE_CLI_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    app = flask_app.create_app()
    simulator: FakeServer = app.extensions["llmcomm.simulator"]
    try:
        simulator.default = Script(text="Simulated.")
        response = app.test_client().post("/generate", json={"prompt": "hi"})
        assert response.json is not None
        assert (response.json["content"], response.json["provider"]) == ("Simulated.", "simulator")
    finally:
        app.extensions["llmcomm"].close()
        simulator.__exit__(None, None, None)

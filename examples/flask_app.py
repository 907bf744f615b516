"""Flask with llmcomm: a reply streamed from a blocking view, and a plain JSON endpoint.

Run it (needs `pip install flask`)::

    python examples/flask_app.py             # or: flask --app examples/flask_app.py run
    curl -N 'http://127.0.0.1:5000/stream?prompt=Tell+me+a+story'

- `GET /stream?prompt=...`: the reply as `text/plain`, written as the tokens arrive.
- `POST /generate` with `{"prompt": "..."}`: the whole reply as JSON.

Flask views are blocking, so the app uses `SyncLLMCommunication`, one for the whole
app, shared by every worker thread; it runs the async core on llmcomm's one
background event loop. The view starts the stream and waits for the first token
before it answers, so a failure before any text (bad key, provider down) is still a
proper HTTP error. `stream_with_context` keeps the request available while Flask
writes the body; when the client goes away, Flask closes the body generator, and
leaving `with reply:` closes the upstream request.

With no provider credentials in the environment (or `.env`), the app serves from
llmcomm's loopback simulator and says so.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, jsonify, request, stream_with_context

from llmcomm import (
    Configuration,
    ConfigurationError,
    InvalidRequestError,
    LLMException,
    LLMTimeoutError,
    ProviderConfig,
    StreamInterruptedError,
    SyncLLMCommunication,
)
from llmcomm.testing import FakeServer, Script

log = logging.getLogger("flask_app")

SIMULATED_REPLY = (
    "This reply comes from llmcomm's loopback simulator, one token at a time. Set ANTHROPIC_API_KEY "
    "or OPENAI_API_KEY (OPENAI_BASE_URL for a compatible server) and restart to talk to a real model."
)


def _start_simulator() -> tuple[Configuration, FakeServer]:
    server = FakeServer(default=Script(text=SIMULATED_REPLY, token_delay=0.05))
    server.__enter__()  # serves from a daemon thread until the process exits
    atexit.register(server.__exit__, None, None, None)
    log.warning("no provider credentials found: serving from the loopback simulator on port %d", server.port)
    provider = ProviderConfig(
        name="simulator", kind="anthropic", api_key="sk-simulator", base_url=server.anthropic_base_url
    )
    return Configuration(providers=[provider]), server


def create_app(config: Configuration | None = None) -> Flask:
    """The app; `config=None` reads the providers from the environment (or starts the simulator)."""
    app = Flask(__name__)
    if config is None:
        try:
            config = Configuration.from_env()
        except ConfigurationError as error:
            if not error.nothing_configured:
                raise  # a mistake in the configuration stops the app; the simulator only stands in for nothing
            config, app.extensions["llmcomm.simulator"] = _start_simulator()
    llm = SyncLLMCommunication(config)
    app.extensions["llmcomm"] = llm
    atexit.register(llm.close)

    @app.errorhandler(LLMException)
    def llm_error(error: LLMException) -> tuple[Response, int]:
        # 400 for input we refused; 504 when the deadline passed; 502 for any provider failure.
        status = 400 if isinstance(error, InvalidRequestError) else 504 if isinstance(error, LLMTimeoutError) else 502
        return jsonify(error=type(error).__name__, detail=str(error)), status

    @app.get("/stream")
    def stream() -> Response:
        options = _options(request.args)
        reply = llm_of_app().generate_stream(request.args.get("prompt", ""), **options)
        chunks = iter(reply)
        try:
            first = next(chunks, None)  # a failure before the first token is still an HTTP error
        except LLMException:
            reply.close()
            raise

        def body() -> Iterator[str]:
            with reply:  # however the body ends (done, failed, client gone), the upstream closes
                if first is not None:
                    yield first.text
                try:
                    for chunk in chunks:
                        yield chunk.text
                except StreamInterruptedError as error:
                    log.warning("stream for %s interrupted: %s", request.remote_addr, error)
                    yield f"\n[the reply was cut off: {error.message}]\n"

        # stream_with_context: the request stays available while Flask writes the body.
        response = Response(stream_with_context(body()), mimetype="text/plain")
        response.call_on_close(reply.close)  # also when the body was never started
        return response

    @app.post("/generate")
    def generate() -> Response:
        body: dict[str, Any] = request.get_json(force=True, silent=True) or {}
        options = _options(body)
        response = llm_of_app().generate_response(body.get("prompt", ""), **options)
        return jsonify(
            content=response.content,
            provider=response.provider,
            model=response.model,
            usage=dict(response.usage),
            response_time=response.response_time,
        )

    return app


def llm_of_app() -> SyncLLMCommunication:
    """The app's one `SyncLLMCommunication`."""
    llm: SyncLLMCommunication = current_app.extensions["llmcomm"]
    return llm


def _options(source: Any) -> dict[str, Any]:
    """Call options from query arguments or a JSON body; llmcomm validates them."""
    options: dict[str, Any] = {key: source[key] for key in ("model", "system") if source.get(key)}
    if source.get("max_tokens") is not None:
        try:
            options["max_tokens"] = int(source["max_tokens"])
        except (TypeError, ValueError):
            raise InvalidRequestError(f"max_tokens must be a whole number, got {source['max_tokens']!r}") from None
    return options


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    create_app().run(host="127.0.0.1", port=5000, threaded=True)

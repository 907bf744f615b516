"""FastAPI with llmcomm: tokens streamed as Server-Sent Events, and a plain JSON endpoint.

Run it (needs `pip install fastapi uvicorn`)::

    python examples/fastapi_app.py            # http://127.0.0.1:8000/
    uvicorn examples.fastapi_app:app          # the same app, from the repository root

- `GET /`: a small page whose `EventSource` shows the tokens as they arrive.
- `GET /stream?prompt=...`: `text/event-stream`; `token` events carry JSON strings,
  then one `done` event (provider, model, usage) or one `failed` event (the error).
- `POST /generate` with `{"prompt": "..."}`: the whole reply as JSON.

One `LLMCommunication` serves the whole app: the lifespan opens it (one connection
pool) and closes it on shutdown. When a client disconnects mid-stream, FastAPI
cancels the endpoint's generator; leaving `async with llm.generate_stream(...)` then
closes the upstream request at once, so an abandoned page costs no tokens.

With no provider credentials in the environment (or `.env`), the app serves from
llmcomm's loopback simulator and logs that it does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from llmcomm import (
    Configuration,
    ConfigurationError,
    InvalidRequestError,
    LLMCommunication,
    LLMException,
    LLMTimeoutError,
    ProviderConfig,
)
from llmcomm.testing import FakeServer, Script

log = logging.getLogger("fastapi_app")

SIMULATED_REPLY = (
    "This reply comes from llmcomm's loopback simulator, one token at a time. Set ANTHROPIC_API_KEY "
    "or OPENAI_API_KEY (OPENAI_BASE_URL for a compatible server) and restart to talk to a real model."
)


class State(TypedDict):
    """What the lifespan hands to every request (`request.state`)."""

    llm: LLMCommunication


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1)
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = Field(default=None, gt=0)


class GenerateReply(BaseModel):
    content: str
    provider: str
    model: str
    usage: dict[str, int]
    response_time: float


async def _open_llm(stack: AsyncExitStack, config: Configuration | None) -> LLMCommunication:
    if config is None:
        try:
            config = Configuration.from_env()
        except ConfigurationError as error:
            if not error.nothing_configured:
                raise  # a mistake in the configuration stops the app; the simulator only stands in for nothing
            server = await stack.enter_async_context(FakeServer(default=Script(text=SIMULATED_REPLY, token_delay=0.05)))
            log.warning("no provider credentials found: serving from the loopback simulator on port %d", server.port)
            config = Configuration(
                providers=[
                    ProviderConfig(
                        name="simulator", kind="anthropic", api_key="sk-simulator", base_url=server.anthropic_base_url
                    )
                ]
            )
    return await stack.enter_async_context(LLMCommunication(config))


def create_app(config: Configuration | None = None) -> FastAPI:
    """The app; `config=None` reads the providers from the environment when it starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            yield {"llm": await _open_llm(stack, config)}

    app = FastAPI(title="llmcomm example", lifespan=lifespan)

    @app.exception_handler(LLMException)
    async def llm_error(request: Request, error: LLMException) -> JSONResponse:
        # 400 for input we refused; 504 when the deadline passed; 502 for any provider failure.
        status = 400 if isinstance(error, InvalidRequestError) else 504 if isinstance(error, LLMTimeoutError) else 502
        return JSONResponse({"error": type(error).__name__, "detail": str(error)}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return PAGE

    @app.get("/stream", response_class=EventSourceResponse)
    async def stream(request: Request, prompt: str, model: str | None = None) -> AsyncIterator[ServerSentEvent]:
        llm: LLMCommunication = request.state.llm
        options: dict[str, Any] = {"model": model} if model else {}
        try:
            async with llm.generate_stream(prompt, **options) as reply:
                async for chunk in reply:
                    if chunk.text:
                        yield ServerSentEvent(event="token", data=chunk.text)
        except LLMException as error:
            yield ServerSentEvent(event="failed", data={"error": type(error).__name__, "detail": str(error)})
            return
        done = reply.response
        assert done is not None
        yield ServerSentEvent(
            event="done", data={"provider": done.provider, "model": done.model, "usage": dict(done.usage)}
        )

    @app.post("/generate")
    async def generate(body: GenerateRequest, request: Request) -> GenerateReply:
        llm: LLMCommunication = request.state.llm
        options = body.model_dump(exclude={"prompt"}, exclude_none=True)
        response = await llm.generate_response(body.prompt, **options)
        return GenerateReply(
            content=response.content,
            provider=response.provider,
            model=response.model,
            usage=dict(response.usage),
            response_time=response.response_time,
        )

    return app


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>llmcomm streaming</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  input { width: 70%; font: inherit; }
  #reply { white-space: pre-wrap; border-left: 3px solid #ccc; padding-left: 1rem; min-height: 3rem; }
  #status { color: #666; font-size: 0.9em; }
</style>
</head>
<body>
<h1>llmcomm streaming</h1>
<form id="ask"><input name="prompt" value="Tell me about Server-Sent Events" autofocus> <button>Ask</button></form>
<p id="reply" data-state="idle"></p>
<p id="status"></p>
<script>
const reply = document.getElementById("reply");
const statusLine = document.getElementById("status");
let source = null;

function ask(prompt) {
  if (source) source.close();
  reply.textContent = "";
  reply.dataset.state = "streaming";
  reply.dataset.tokens = 0;
  statusLine.textContent = "…";
  source = new EventSource("/stream?" + new URLSearchParams({prompt}));
  source.addEventListener("token", (event) => {
    reply.textContent += JSON.parse(event.data);
    reply.dataset.tokens = Number(reply.dataset.tokens) + 1;
  });
  source.addEventListener("done", (event) => {
    const done = JSON.parse(event.data);
    statusLine.textContent = `${done.provider} · ${done.model} · ${done.usage.completion_tokens} tokens`;
    reply.dataset.state = "done";
    source.close();
  });
  source.addEventListener("failed", (event) => {
    statusLine.textContent = "failed: " + JSON.parse(event.data).detail;
    reply.dataset.state = "failed";
    source.close();
  });
  // A dropped connection: stop rather than let EventSource reconnect and ask again.
  source.onerror = () => { if (reply.dataset.state === "streaming") { reply.dataset.state = "failed"; source.close(); } };
}

document.getElementById("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  ask(new FormData(event.target).get("prompt"));
});
const initial = new URLSearchParams(location.search).get("prompt");
if (initial) {
  document.getElementById("ask").elements.prompt.value = initial;
  ask(initial);
}
</script>
</body>
</html>
"""

app = create_app()

if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="127.0.0.1", port=8000)

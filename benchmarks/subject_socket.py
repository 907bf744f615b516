"""The server alone: a raw socket reader that sends a request and reads the reply's bytes.

No HTTP client, no parsing beyond finding the end of the body: what it measures
is how fast `benchmarks.server` delivers, the ceiling every other subject sits
under. It reports the tokens the server was asked for, not tokens it parsed.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import anyio
import anyio.abc

from .common import PROMPT, Api, Client, Hold, Subject, model_for
from .server import parse_model

_CHUNKED_END = b"\r\n0\r\n\r\n"
#: bytes read per receive call (as much as the kernel has)
_READ = 1 << 20
#: receive calls one reply may take before it counts as broken
_MAX_READS = 1 << 20


class SocketClient:
    def __init__(self, api: Api, origin: str) -> None:
        parts = urlsplit(origin)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._path = "/v1/chat/completions" if api == "openai" else "/v1/messages"
        self._idle: list[anyio.abc.SocketStream] = []

    def _request(self, model: str, stream: bool) -> bytes:
        flag = "true" if stream else "false"
        body = f'{{"model":"{model}","max_tokens":4096,"stream":{flag},'
        body += f'"messages":[{{"role":"user","content":"{PROMPT}"}}]}}'
        head = f"POST {self._path} HTTP/1.1\r\nhost: {self._host}\r\ncontent-type: application/json\r\n"
        return (head + f"content-length: {len(body)}\r\n\r\n" + body).encode()

    async def _exchange(self, request: bytes, chunked: bool, hold: Hold | None) -> float:
        sock = self._idle.pop() if self._idle else await anyio.connect_tcp(self._host, self._port)
        await sock.send(request)
        buffer = b""  # a whole non-streamed reply; only the tail of a streamed one
        first = 0.0
        length: int | None = None
        for _ in range(_MAX_READS):
            data = await sock.receive(_READ)
            if not first:
                first = time.perf_counter()
                if hold is not None:
                    await hold()
            if chunked:
                buffer = (buffer + data)[-len(_CHUNKED_END) :]
                if buffer == _CHUNKED_END:
                    break
                continue
            buffer += data
            if length is None and (end := buffer.find(b"\r\n\r\n")) >= 0:
                head = buffer[:end].lower()
                start = head.index(b"content-length:") + 15
                length = end + 4 + int(head[start : head.index(b"\r\n", start)])
            if length is not None and len(buffer) >= length:
                break
        else:
            raise RuntimeError("the reply never ended")
        self._idle.append(sock)
        return first

    async def stream(self, model: str, hold: Hold | None = None) -> tuple[int, float]:
        return parse_model(model)[0], await self._exchange(self._request(model, True), True, hold)

    async def complete(self) -> None:
        await self._exchange(self._request(model_for(3), False), False, None)

    async def aclose(self) -> None:
        for sock in self._idle:
            await sock.aclose()
        self._idle.clear()


async def open_client(api: Api, origin: str) -> Client:
    return SocketClient(api, origin)


SUBJECT = Subject(
    name="socket",
    apis=("anthropic", "openai"),
    imports=("anyio",),
    open=open_client,
    description="raw socket reader, no HTTP client (the server's ceiling)",
)

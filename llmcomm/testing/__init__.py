"""A loopback fake of the Anthropic and OpenAI HTTP APIs for tests and benchmarks.

:class:`FakeServer` speaks the Anthropic Messages and OpenAI Chat Completions
wire protocols, streaming and not, over real TCP on 127.0.0.1, so the official
SDK clients and raw HTTP clients can be pointed at it.  Each request is
answered by a :class:`Script`, which can also inject faults: error statuses,
delays, stalls, resets, broken SSE.  Every request is kept as a
:class:`RecordedRequest`.

Example::

    async with FakeServer() as server:
        server.enqueue(Script(status=429, retry_after=1.0), Script(text="ok"))
        client = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="x")
        ...
"""

from ._record import RecordedRequest
from ._script import Script
from ._server import FakeServer

__all__ = ["FakeServer", "RecordedRequest", "Script"]

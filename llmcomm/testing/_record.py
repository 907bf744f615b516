"""The :class:`RecordedRequest` kept for every request the fake server receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._reply import Api
from ._script import Script

__all__ = ["RecordedRequest"]


@dataclass(slots=True, eq=False)
class RecordedRequest:
    """One request the server received, with the timing of its response.

    All timestamps are ``time.monotonic()`` values, comparable with the test's own.

    Attributes:
        method: HTTP method.
        path: Request path without the query string.
        query: Query string (without ``?``), empty if none.
        headers: Request headers with lower-cased names.
        body: Parsed JSON body, or ``None`` if empty or not JSON.
        api: Which API the path belongs to.
        stream: Whether the body asked for a streamed reply.
        model: The body's ``model`` field.
        connection_id: Identifies the TCP connection (counts from 1).
        received_at: When the whole request had been read.
        response_started_at: When the status line was written.
        finished_at: When the whole response had been written.
        client_closed_at: When the client closed or reset the connection while
            this response was in progress, or while the connection was idle
            after it.
        script: The script that answered, ``None`` for non-API requests.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    api: Api
    stream: bool
    model: str | None
    connection_id: int
    received_at: float
    response_started_at: float | None = None
    finished_at: float | None = None
    client_closed_at: float | None = None
    script: Script | None = None

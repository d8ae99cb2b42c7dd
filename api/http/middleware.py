"""The service's own middleware, as plain ASGI callables.

Starlette's `BaseHTTPMiddleware` (what `@app.middleware("http")` installs) runs the rest of
the app in a task group and streams the response back through memory channels: about a
millisecond a request for each such layer on this service's requests. These do the same
work by wrapping `receive` and `send` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.metrics import Metrics
from api.logsafe import printable

__all__ = ["BodyLimit", "RequestMetrics", "UnexpectedErrors"]

log = logging.getLogger("pes.http")

REFERENCE_UPLOADS = ("/api/v1/universes/", "/api/v1/risk-models/", "/api/v1/fx-snapshots/")
"""Paths whose PUT bodies (registered reference data) get the larger body limit."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _too_large(max_bytes: int) -> JSONResponse:
    return JSONResponse(
        {
            "error": "payload_too_large",
            "message": f"body larger than {max_bytes} bytes",
            "detail": [],
        },
        status_code=413,
    )


def _content_length(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return bytes(value)
    return None


class BodyLimit:
    """413 for a body over the limit: by its Content-Length, or as a chunked body arrives.

    PUTs of registered reference data (a 2,000-name universe or factor model is megabytes)
    get their own, larger limit. A chunked body is read here up to the limit and handed on
    whole; one over the limit is refused without reading the rest.

    This runs before authentication (a route's first dependency), so a chunked body is
    buffered, up to the limit, even for a caller who is then refused: accepted, because the
    cost is bounded by the limit (5 MB; 50 MB for reference uploads) and parsing, the larger
    cost, happens only after the caller is known. A body with a Content-Length is not read
    here at all.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, reference_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.reference_bytes = reference_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized body, or pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if scope["method"] == "PUT" and scope["path"].startswith(REFERENCE_UPLOADS):
            limit = self.reference_bytes
        declared = _content_length(scope)
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _too_large(limit)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` once, then whatever the connection says next."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RequestMetrics:
    """Count and time every request under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, *, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; record its latency and status, errors included."""
        metrics = self._metrics() if scope["type"] == "http" else None
        if metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
            metrics.requests.labels(scope["method"], route, str(status)).inc()


class UnexpectedErrors:
    """A JSON 500 for an unexpected exception, with the connection left open.

    Starlette's outermost `ServerErrorMiddleware` answers an exception with a 500 and then
    raises it again, for the server to see; uvicorn then closes the connection, so every
    request a client had pipelined or was about to send on it fails with a reset. Added
    inside it, this layer logs the exception once (with its traceback) and answers the JSON
    500 itself, raising nothing: the server sees a finished response and keeps the
    connection. An exception after the response has started cannot be answered any more;
    it goes on to the server, which ends that response by closing the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; turn an exception before the response into a JSON 500."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception:
            if started:
                raise
            log.exception(
                "unexpected error in %s %s", scope["method"], printable(scope.get("path", ""))
            )
            await JSONResponse(
                {
                    "error": "internal_error",
                    "message": "unexpected error; it has been logged",
                    "detail": [],
                },
                status_code=500,
            )(scope, receive, send)

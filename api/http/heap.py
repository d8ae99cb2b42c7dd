"""Settle the service's heap after a response whose request grew a cache.

`api.heap.Heap` explains why long-lived objects are frozen out of full collections; this
middleware runs the settlement after the response of a request that grew a cache (a compile
or reference-cache miss), so that the request is not delayed by it.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from api.heap import Heap

__all__ = ["Heap", "SettleAfterResponse"]


class SettleAfterResponse:
    """ASGI middleware: after a request's response has gone out, settle a heap that grew.

    The settlement runs in a worker thread once the downstream app has finished, so the
    request that caused the growth is not delayed by it (it already paid for a compile).
    """

    def __init__(self, app: ASGIApp, heap: Callable[[], Heap | None]) -> None:
        self.app = app
        self._heap = heap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then settle the heap if the request grew it."""
        await self.app(scope, receive, send)
        if scope["type"] != "http":
            return
        heap = self._heap()
        if heap is not None and heap.grown():
            await anyio.to_thread.run_sync(heap.settle)

"""Keep the garbage collector's full collections off the request path.

A full (oldest-generation) collection walks every tracked object of the process: the
imported libraries, cached layouts and compiled cvxpy problems, parsed universes — about
180,000 objects once one 500-name policy set has been served, 100 ms and more a walk. The
collector starts one whenever enough objects have survived two younger collections, so
under load every few dozen requests one of them paid it (the p99 of the HTTP benchmark).

Objects that live as long as the process are moved out of the collector's sight with
`gc.freeze()`: once at start-up, and again after a request that grew a cache (a compile or
reference-cache miss), outside that request, after its response is sent. Before freezing,
the heap is unfrozen and collected in full, so that entries evicted from a cache since the
last freeze (which may hold reference cycles) are reclaimed and nothing leaks.
Per-request objects still die young, as before.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Heap", "SettleAfterResponse"]

log = logging.getLogger("pes.heap")


class Heap:
    """Freezes the long-lived heap at start-up and whenever `grown()` says it grew."""

    def __init__(self, growth: Callable[[], int], *, enabled: bool = True) -> None:
        """Watch `growth`: a number that rises whenever long-lived objects were added.

        The service passes its caches' miss counters, summed.
        """
        self.enabled = enabled
        self._growth = growth
        self._settled_at: int | None = None
        self._lock = threading.Lock()
        self.settlements = 0

    def grown(self) -> bool:
        """True when caches have missed since the last settlement."""
        return self.enabled and self._growth() != self._settled_at

    def settle(self) -> None:
        """Collect everything, then freeze what survives (a no-op when disabled)."""
        if not self.enabled:
            return
        with self._lock:
            marker = self._growth()
            if marker == self._settled_at:
                return  # another thread settled this growth already
            started = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._settled_at = marker
            self.settlements += 1
        log.debug(
            "heap settled: %d objects frozen in %.1f ms",
            gc.get_freeze_count(),
            1000 * (time.perf_counter() - started),
        )


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

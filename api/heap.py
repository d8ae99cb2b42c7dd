"""Keep the garbage collector's full collections off the latency path of a long-lived process.

A full (oldest-generation) collection walks every tracked object of the process: the
imported libraries, cached layouts and compiled cvxpy problems, parsed universes — about
180,000 objects once one 500-name policy set has been served, 100 ms and more a walk. The
collector starts one whenever enough objects have survived two younger collections, so
under load every few dozen requests of `pes serve` paid it (the p99 of the HTTP benchmark),
and `pes monitor` paid it every few seconds at 10,000 updates/s (rounds of 20 ms stretched to
150 to 500 ms; docs/monitor.md).

Objects that live as long as the process are moved out of the collector's sight with
`gc.freeze()`: once at start-up, and again after the long-lived heap grew (a cache miss in
the service, a rebuilt book in the monitor), outside the latency path. Before freezing,
the heap is unfrozen and collected in full, so that entries evicted from a cache since the
last freeze (which may hold reference cycles) are reclaimed and nothing leaks.
Short-lived objects still die young, as before.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Heap"]

log = logging.getLogger("pes.heap")


class Heap:
    """Freezes the long-lived heap at start-up and whenever `grown()` says it grew."""

    def __init__(self, growth: Callable[[], int], *, enabled: bool = True) -> None:
        """Watch `growth`: a number that rises whenever long-lived objects were added.

        The service passes its caches' miss counters, summed; the monitor the number of
        times its book was built.
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

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
the service, a rebuilt book in the monitor), outside the latency path. Short-lived objects
still die young, as before.

A settlement after growth is light: it collects what is not frozen (what the process made
since the last freeze, a few thousand objects) and freezes the survivors, well under a
millisecond. It cannot reclaim a frozen object: a cache entry frozen while cached and
evicted since, if it holds reference cycles, stays until a full settlement unfreezes the
heap, collects everything and freezes again. That walk costs what freezing saves (about
190 ms with one 500-name policy set served, holding the interpreter), so it is done only
when it can give memory back: once `reclaim_after` growth has passed since the last one
(the service passes the number of entries its caches hold together), and, where the
process's resident memory can be read, only if it grew by `reclaim_mb` since then. Evicted
entries waiting to be reclaimed then hold at most that much memory. With names drawn per
request the benchmark's adjusted requests evict an entry almost every time, and their
resident memory stayed flat over 500 of them with no full settlement at all (the entries
hold no cycles that matter); a full settlement every 144 misses had made that run's p99.
Settling in full after every miss, as this module did first, cost the service 200 ms of CPU
a request under that load, eight times the time of the same service with freezing off.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["Heap", "resident_mb"]

log = logging.getLogger("pes.heap")


def resident_mb() -> float | None:
    """The process's resident memory in MiB, or None where it cannot be read (not Linux)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * _PAGE_BYTES / 2**20


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Heap:
    """Freezes the long-lived heap at start-up and whenever `grown()` says it grew."""

    def __init__(
        self,
        growth: Callable[[], int],
        *,
        enabled: bool = True,
        reclaim_after: int = 1,
        reclaim_mb: float = 0.0,
        memory: Callable[[], float | None] = resident_mb,
    ) -> None:
        """Watch `growth`: a number that rises whenever long-lived objects were added.

        The service passes its caches' miss counters, summed; the monitor the number of
        times its book was built. A settlement is full (see the module's doc) at the first,
        and then once `growth` has risen by `reclaim_after` and `memory()` (MiB) by
        `reclaim_mb` since the last full one (memory unread: `reclaim_after` alone). The
        defaults make every settlement full.
        """
        if reclaim_after < 1:
            raise ValueError("reclaim_after must be at least 1")
        if not reclaim_mb >= 0:
            raise ValueError("reclaim_mb must be at least 0")
        self.enabled = enabled
        self.reclaim_after = reclaim_after
        self.reclaim_mb = reclaim_mb
        self._growth = growth
        self._memory = memory
        self._settled_at: int | None = None
        self._reclaimed_at: int | None = None
        self._reclaimed_mb: float | None = None
        self._lock = threading.Lock()
        self.settlements = 0
        """Settlements done, light and full."""
        self.reclaims = 0
        """Full settlements done."""

    def grown(self) -> bool:
        """True when caches have missed since the last settlement."""
        return self.enabled and self._growth() != self._settled_at

    def settle(self) -> None:
        """Collect, then freeze what survives: in full when due, else what is not frozen.

        A no-op when disabled or when nothing grew since the last settlement.
        """
        if not self.enabled:
            return
        with self._lock:
            marker = self._growth()
            if marker == self._settled_at:
                return  # another thread settled this growth already
            started = time.perf_counter()
            full = self._due(marker)
            if full:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._settled_at = marker
            self.settlements += 1
            if full:
                self._reclaimed_at = marker
                self._reclaimed_mb = self._memory() if self.reclaim_mb else None
                self.reclaims += 1
        if log.isEnabledFor(logging.DEBUG):  # counting the frozen objects walks them all
            log.debug(
                "heap settled (%s): %d objects frozen in %.1f ms",
                "full" if full else "light",
                gc.get_freeze_count(),
                1000 * (time.perf_counter() - started),
            )

    def _due(self, marker: int) -> bool:
        """True when this settlement must be full (see `__init__`)."""
        if self._reclaimed_at is None:
            return True
        if marker - self._reclaimed_at < self.reclaim_after:
            return False
        if not self.reclaim_mb or self._reclaimed_mb is None:
            return True
        now = self._memory()
        return now is None or now - self._reclaimed_mb >= self.reclaim_mb

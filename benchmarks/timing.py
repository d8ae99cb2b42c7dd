"""Timing loops: warm-up, then warm repeats timed with `time.perf_counter`.

A path runs requests `0, 1, 2, ...` of a case; it stops after `repeats` timed requests, or
earlier once `time_limit` seconds have passed and at least `min_samples` were timed (slow
paths at large n). Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Budget", "PathResult", "Progress", "loop", "settle_heap", "stderr_progress"]


@dataclass(frozen=True)
class Budget:
    """How many requests a path gets."""

    repeats: int
    warmup: int = 3
    time_limit: float = 30.0
    min_samples: int = 5


@dataclass
class PathResult:
    """Timings of one path at one size, and what the path did."""

    path: str
    n: int
    samples_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """p50/p99/max (ms), sample count, per-stage p50, and the path's extras."""
        a = np.asarray(self.samples_ms)
        out: dict[str, Any] = {
            "count": len(a),
            "p50_ms": _round(np.percentile(a, 50)),
            "p99_ms": _round(np.percentile(a, 99)),
            "max_ms": _round(a.max()),
            "mean_ms": _round(a.mean()),
        }
        if self.stages_ms:
            out["stages_p50_ms"] = {
                k: _round(np.percentile(v, 50)) for k, v in self.stages_ms.items()
            }
            out["stages_p99_ms"] = {
                k: _round(np.percentile(v, 99)) for k, v in self.stages_ms.items()
            }
        return out | self.extra


def _round(x: Any) -> float:
    return round(float(x), 4)


Progress = Callable[[str, int, int], None]


def loop(
    budget: Budget, run_one: Callable[[int, bool], float | None], label: str, progress: Progress
) -> None:
    """Warm-up requests, then timed ones until the repeats or the time limit run out.

    The first request always runs untimed (it compiles); the other warm-up requests are
    skipped once warming up has taken a quarter of the time limit (slow paths at large
    n). `run_one` calls `settle_heap` before it starts the clock; the heap is thawed when
    the path is done, so that what it kept can be collected.
    """
    try:
        _loop(budget, run_one, label, progress)
    finally:
        gc.unfreeze()


def settle_heap() -> None:
    """Collect the garbage, then freeze what survives, as the service does (`api.heap`).

    Before each timed request, so that a collection triggered by the harness's own
    allocations does not land in the timing. The service keeps its long-lived objects
    frozen out of full collections and settles lightly after a request that grew its
    caches; the harness does the same before every request. A full collection of the
    harness's whole heap (every case, peer and compiled problem of the run, some 240,000
    objects) before each request instead walks ~100 ms of memory the request then finds
    out of the processor's caches: at n = 500 a check took 2.4 ms after one and 1.5 ms
    after a settlement, a time no request of the service sees.
    """
    gc.collect()
    gc.freeze()


def _loop(
    budget: Budget, run_one: Callable[[int, bool], float | None], label: str, progress: Progress
) -> None:
    started = time.perf_counter()
    warmup = 0
    while warmup < budget.warmup:
        run_one(warmup, False)
        warmup += 1
        if time.perf_counter() - started > budget.time_limit / 4:
            break
    started = time.perf_counter()
    for k in range(budget.repeats):
        run_one(warmup + k, True)
        progress(label, k + 1, budget.repeats)
        if k + 1 >= budget.min_samples and time.perf_counter() - started > budget.time_limit:
            break


def stderr_progress(label: str, done: int, total: int) -> None:
    """A progress line on stderr, rewritten in place on a terminal."""
    if sys.stderr.isatty():
        print(f"\r[bench] {label}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

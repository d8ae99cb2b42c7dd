"""Timing loops: warm-up, then warm repeats timed with `time.perf_counter`.

A path runs requests `0, 1, 2, ...` of a case; it stops after `repeats` timed requests, or
earlier once `time_limit` seconds have passed and at least `min_samples` were timed (slow
paths at large n). Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Budget", "PathResult", "Progress", "loop", "stderr_progress"]


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
    n). Before each timed request the garbage of building it is collected, so that a
    collection triggered by the harness's own allocations does not land in the timing.
    """
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

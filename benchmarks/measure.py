"""Timing loops: warm-up, then warm repeats timed with `time.perf_counter`.

Every path runs requests `0, 1, 2, ...` of the same case, so all paths see the same
generated decisions. Requests are built (and validated by pydantic) before the clock
starts: the engine paths time `PolicyEngine.validate` alone, the baselines their own build
and solve. A path stops after `repeats` timed requests, or earlier once `time_limit`
seconds have passed and at least `min_samples` were timed (slow paths at large n).
"""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.baselines import (
    CVXPY_OSQP_SETTINGS,
    ENGINE_OSQP_SETTINGS,
    OSQPDirect,
    ProjectQP,
    Solution,
    naive_cvxpy,
    project_qp,
)
from benchmarks.cases import Case
from benchmarks.policies import PolicySet
from engine import PolicyEngine

__all__ = ["ENGINE_PATHS", "PATHS", "Budget", "EnginePath", "PathResult", "measure"]


@dataclass(frozen=True)
class EnginePath:
    """An engine path: which policy set, mode and adjustment method."""

    name: str
    policy_set: PolicySet
    mode: str
    adjustment: str
    description: str


ENGINE_PATHS = (
    EnginePath("engine_check", "twenty", "validate", "auto", "engine, check only, 20 policies"),
    EnginePath(
        "engine_check_base", "base", "validate", "auto", "engine, check only, 4 baseline policies"
    ),
    EnginePath(
        "engine_scale_back", "base", "adjust", "scale_back", "engine, adjust scale_back, baseline"
    ),
    EnginePath("engine_project", "base", "adjust", "project", "engine, adjust project, baseline"),
    EnginePath(
        "engine_cones",
        "cones",
        "adjust",
        "scale_back",
        "engine, adjust scale_back, baseline + volatility + tracking error",
    ),
)
BASELINE_PATHS = {
    "naive_cvxpy": "naive cvxpy: build + solve per request, OSQP (cvxpy defaults)",
    "osqp_direct": "floor: OSQP API direct, warm-started, q/l/u updates (cvxpy's settings)",
    "osqp_direct_tight": "OSQP API direct at the engine's settings (eps 1e-9, polishing)",
}
PATHS: dict[str, str] = {p.name: p.description for p in ENGINE_PATHS} | BASELINE_PATHS


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


def _loop(
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


def _engine(case: Case, path: EnginePath, budget: Budget, progress: Progress) -> PathResult:
    engine = PolicyEngine()
    policies = case.policies[path.policy_set]
    result = PathResult(path.name, case.n)
    counts: Counter[str] = Counter()
    solvers: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    attempt_seconds: dict[str, float] = {}
    before = engine.cache_stats()

    def run_one(i: int, timed: bool) -> float | None:
        nonlocal before
        request = case.request(
            i, policy_set=path.policy_set, mode=path.mode, adjustment=path.adjustment
        )
        if timed and not result.samples_ms:
            before = engine.cache_stats()  # cache counters from the first timed request on
        gc.collect()
        start = time.perf_counter()
        response = engine.validate(request, policies)
        elapsed = 1000 * (time.perf_counter() - start)
        if not timed:
            return None
        result.samples_ms.append(elapsed)
        for stage, ms in response.timings_ms.items():
            result.stages_ms.setdefault(stage, []).append(ms)
        counts["compliant" if response.is_compliant else "not_compliant"] += 1
        adjusted = response.adjusted_decision
        if adjusted is not None:
            counts["adjusted"] += 1
            counts["adjusted_compliant"] += int(adjusted.is_compliant)
            solvers[adjusted.solver] += 1
            for attempt in adjusted.solver_attempts:
                key = f"{attempt.solver}: {attempt.status}"
                attempts[key] += 1
                attempt_seconds[key] = attempt_seconds.get(key, 0.0) + attempt.seconds
        if response.adjustment_error is not None:
            counts["adjustment_errors"] += 1
        for v in response.violations:
            if v.violation_type in ("volatility.max", "tracking_error.max"):
                counts[f"proposals_breaching_{v.violation_type.split('.')[0]}"] += 1
        return elapsed

    _loop(budget, run_one, f"n={case.n} {path.name}", progress)
    after = engine.cache_stats()
    result.extra = {
        "outcomes": dict(counts),
        "solvers": dict(solvers),
        "solver_attempts": {
            k: {"count": c, "mean_ms": round(1000 * attempt_seconds[k] / c, 3)}
            for k, c in attempts.items()
        },
        "cache": {
            "entries": after.entries,
            "warmup_hits": before.hits,
            "warmup_misses": before.misses,
            "hits": after.hits - before.hits,
            "misses": after.misses - before.misses,
        },
    }
    return result


def _baseline(
    case: Case,
    name: str,
    solve: Callable[[ProjectQP], Solution],
    budget: Budget,
    progress: Progress,
) -> PathResult:
    result = PathResult(name, case.n)
    statuses: Counter[str] = Counter()
    iterations: list[int] = []
    violations: list[float] = []
    distances: list[float] = []

    def run_one(i: int, timed: bool) -> float | None:
        qp = _qp(case, i)
        gc.collect()
        solution = solve(qp)
        if not timed:
            return None
        result.samples_ms.append(1000 * solution.seconds)
        statuses[solution.status] += 1
        iterations.append(solution.iterations)
        violations.append(qp.max_violation(solution.w))
        distances.append(qp.distance(solution.w))
        return solution.seconds

    _loop(budget, run_one, f"n={case.n} {name}", progress)
    result.extra = {
        "statuses": dict(statuses),
        "iterations_p50": int(np.percentile(iterations, 50)),
        "iterations_max": int(max(iterations)),
        "max_violation": float(max(violations)),
        "distance_p50": float(np.percentile(distances, 50)),
    }
    return result


def _qp(case: Case, i: int) -> ProjectQP:
    request = case.request(i, policy_set="base", mode="adjust", adjustment="project")
    return project_qp(request, {nm.symbol: nm.sector for nm in case.names}, case.limits)


def measure(case: Case, path: str, budget: Budget, progress: Progress) -> PathResult:
    """Time `path` on `case`."""
    for engine_path in ENGINE_PATHS:
        if engine_path.name == path:
            return _engine(case, engine_path, budget, progress)
    if path == "naive_cvxpy":
        return _baseline(case, path, naive_cvxpy, budget, progress)
    if path in ("osqp_direct", "osqp_direct_tight"):
        settings = CVXPY_OSQP_SETTINGS if path == "osqp_direct" else ENGINE_OSQP_SETTINGS
        floor = OSQPDirect(_qp(case, 0), settings)  # assembled once, before any timing
        return _baseline(case, path, floor.solve, budget, progress)
    raise ValueError(f"unknown path {path!r}; known: {', '.join(PATHS)}")


def stderr_progress(label: str, done: int, total: int) -> None:
    """A progress line on stderr, rewritten in place on a terminal."""
    if sys.stderr.isatty():
        print(f"\r[bench] {label}: {done}/{total}   ", end="", file=sys.stderr, flush=True)

"""Peers and floors: the baseline `project` QP of every request, solved outside the engine.

Every peer solves request i's QP (`benchmarks.baselines.project_qp`, built from the same
requests as `engine_project`: 20 names drawn anew per request), and every answer is checked
by the benchmark's own numpy code (`ProjectQP.max_violation`, `ProjectQP.distance`).
What each peer compiles once and what it does per request is in the docstrings of
`benchmarks.baselines` and `benchmarks.peer_cvxportfolio`. QPs are built before the
clock starts and shared between the peers of one size (`ProjectQPs`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from benchmarks.baselines import (
    CVXPY_OSQP_SETTINGS,
    ENGINE_OSQP_SETTINGS,
    ClarabelDirect,
    OSQPDirect,
    ProjectQP,
    Solution,
    naive_cvxpy,
    project_qp,
)
from benchmarks.cases import Case, Traded
from benchmarks.timing import Budget, PathResult, Progress, loop, settle_heap

__all__ = ["PEER_PATHS", "ProjectQPs", "measure_peer"]

PEER_PATHS = {
    "cvxportfolio_clarabel": "cvxportfolio SinglePeriodOptimization, compiled once, Clarabel",
    "cvxportfolio_default": "cvxportfolio SinglePeriodOptimization, compiled once, cvxpy's "
    "default solver",
    "clarabel_direct": "conic floor: Clarabel API direct, q/b updated in place",
    "osqp_direct": "floor: OSQP API direct, warm-started, q/l/u updates (cvxpy's settings)",
    "naive_cvxpy": "naive cvxpy: build + solve per request, OSQP (cvxpy defaults)",
    "osqp_direct_tight": "OSQP API direct at the engine's settings (eps 1e-9, polishing)",
}
"""Every peer path and what it is."""


class ProjectQPs:
    """Request i's baseline `project` QP, built once per case and kept for the other peers."""

    def __init__(self, case: Case, traded: Traded = "varying") -> None:
        self.case = case
        self.traded: Traded = traded
        self._sectors = {nm.symbol: nm.sector for nm in case.names}
        self._built: dict[int, ProjectQP] = {}

    def __getitem__(self, i: int) -> ProjectQP:
        if i not in self._built:
            request = self.case.request(
                i, policy_set="base", mode="adjust", adjustment="project", traded=self.traded
            )
            self._built[i] = project_qp(request, self._sectors, self.case.limits)
        return self._built[i]

    def symbols(self) -> list[str]:
        """V's symbols in the QPs' order (every name of the case is held)."""
        return sorted(nm.symbol for nm in self.case.names)


Solve = Callable[[int, ProjectQP], Solution]


def _solver(name: str, qps: ProjectQPs, budget: Budget) -> tuple[Solve, dict[str, float]]:
    """The peer's per-request solve, set up (compiled) once before any timing."""
    if name == "naive_cvxpy":
        return (lambda i, qp: naive_cvxpy(qp)), {}
    if name in ("osqp_direct", "osqp_direct_tight"):
        settings = CVXPY_OSQP_SETTINGS if name == "osqp_direct" else ENGINE_OSQP_SETTINGS
        osqp_floor = OSQPDirect(qps[0], settings)
        return (lambda i, qp: osqp_floor.solve(qp)), {}
    if name == "clarabel_direct":
        conic_floor = ClarabelDirect(qps[0])
        return (lambda i, qp: conic_floor.solve(qp)), {}
    if name in ("cvxportfolio_clarabel", "cvxportfolio_default"):
        from benchmarks.peer_cvxportfolio import CvxportfolioPeer

        count = budget.warmup + budget.repeats  # its data is indexed by time, given up front
        solver = "CLARABEL" if name == "cvxportfolio_clarabel" else None
        peer = CvxportfolioPeer([qps[i] for i in range(count)], qps.symbols(), solver)
        return (lambda i, qp: peer.solve(i)), {"compile_ms": round(1000 * peer.compile_seconds, 1)}
    raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEER_PATHS)}")


def measure_peer(name: str, qps: ProjectQPs, budget: Budget, progress: Progress) -> PathResult:
    """Time peer `name` on the QPs of `qps`' case."""
    solve, setup = _solver(name, qps, budget)
    result = PathResult(name, qps.case.n)
    statuses: Counter[str] = Counter()
    iterations: list[int] = []
    violations: list[float] = []
    distances: list[float] = []

    def run_one(i: int, timed: bool) -> float | None:
        qp = qps[i]
        settle_heap()
        solution = solve(i, qp)
        if not timed:
            return None
        result.samples_ms.append(1000 * solution.seconds)
        statuses[solution.status] += 1
        iterations.append(solution.iterations)
        violations.append(qp.max_violation(solution.w))
        distances.append(qp.distance(solution.w))
        return solution.seconds

    loop(budget, run_one, f"n={qps.case.n} {name}", progress)
    result.extra = setup | {
        "statuses": dict(statuses),
        "iterations_p50": int(np.percentile(iterations, 50)),
        "iterations_max": int(max(iterations)),
        "max_violation": float(max(violations)),
        "distance_p50": float(np.percentile(distances, 50)),
    }
    return result

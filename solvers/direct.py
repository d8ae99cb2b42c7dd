r"""Clarabel called through its own API on assembled cone data: no cvxpy, no canonicalization.

The engine assembles small adjustment problems itself (`engine.adjust.conic`) as

.. math:: \min_z \tfrac12 z^T P z + q^T z \quad \text{s.t.} \quad b - A z \in K

with `K` a product of zero, nonnegative and second-order cones, and hands them here. A
`DirectClarabel` keeps one Clarabel solver per structure key: when the next problem of that
key has the same sparsity patterns, its numbers are written into the solver in place
(`DefaultSolver.update`), which skips Clarabel's setup (equilibration structure, ordering,
symbolic factorization). Clarabel is an interior-point method, so there is no warm start
of the iterates; the saving is the setup and the Python around it.

Statuses map to `SolveStatus` through `STATUS_MAP`; only `Solved` is an answer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, Protocol

import numpy as np
import scipy.sparse as sp

from models.typing import FloatArray
from solvers.base import MIN_TIME_LIMIT_S, SolveOutcome, SolveStatus
from solvers.tolerances import INTERIOR_POINT_REFINEMENT_TOLERANCE, INTERIOR_POINT_TOLERANCE

__all__ = [
    "CLARABEL_DIRECT",
    "OSQP_DIRECT",
    "ConeSpec",
    "ConicData",
    "DirectClarabel",
    "DirectOSQP",
    "DirectSolution",
    "DirectSolver",
]

CLARABEL_DIRECT = "CLARABEL (direct)"
"""The solver name of answers from Clarabel's own API (attempts and `solver` read it)."""

OSQP_DIRECT = "OSQP (direct, warm-started)"
"""The solver name of answers from OSQP's own API, warm-started from the previous answer."""

ConeSpec = tuple[Literal["zero", "nonneg", "soc"], int]
"""One cone of the product, in row order: its kind and its dimension."""


@dataclass
class ConicData:
    """`P` (upper triangle, CSC), `q`, `A` (CSC), `b` and the cones, in row order."""

    P: sp.csc_matrix
    q: FloatArray
    A: sp.csc_matrix
    b: FloatArray
    cones: list[ConeSpec]

    def pattern(self) -> tuple[Any, ...]:
        """What a solver's setup depends on: shapes, sparsity patterns and cones."""
        return (
            self.P.shape,
            self.A.shape,
            tuple(self.cones),
            self.P.indptr.tobytes(),
            self.P.indices.tobytes(),
            self.A.indptr.tobytes(),
            self.A.indices.tobytes(),
        )


@dataclass
class DirectSolution:
    """The primal `x` and dual `z` of a solve (None without an answer), and its outcome."""

    outcome: SolveOutcome
    x: FloatArray | None = None
    z: FloatArray | None = None


class DirectSolver(Protocol):
    """A solver of assembled cone data (`DirectClarabel`, `DirectOSQP`)."""

    name: ClassVar[str]

    def solve(
        self, data: ConicData, *, key: Hashable | None = None, time_limit: float | None = None
    ) -> DirectSolution:
        """Solve `data`; `key` names a structure whose solver may stay resident."""


class DirectClarabel:
    """Clarabel through its Python API, one resident solver per structure key.

    The settings are the `ClarabelAdapter`'s (the same tolerances), with presolve off so
    that data can be updated in place, a looser refinement of each linear solve
    (`INTERIOR_POINT_REFINEMENT_TOLERANCE`) of a less regularized KKT system
    (`STATIC_REGULARIZATION`), and slightly shorter steps (`MAX_STEP_FRACTION`).
    """

    name: ClassVar[str] = CLARABEL_DIRECT
    STATUS_MAP: ClassVar[dict[str, SolveStatus]] = {
        "Solved": SolveStatus.OPTIMAL,
        "AlmostSolved": SolveStatus.INACCURATE,
        "PrimalInfeasible": SolveStatus.INFEASIBLE,
        "AlmostPrimalInfeasible": SolveStatus.INACCURATE,
        "DualInfeasible": SolveStatus.UNBOUNDED,
        "AlmostDualInfeasible": SolveStatus.INACCURATE,
        "MaxIterations": SolveStatus.INACCURATE,
        "MaxTime": SolveStatus.INACCURATE,
        "InsufficientProgress": SolveStatus.INACCURATE,
        "NumericalError": SolveStatus.ERROR,
        "CallbackTerminated": SolveStatus.ERROR,
        "Unsolved": SolveStatus.ERROR,
    }
    MAX_RESIDENT = 16
    """Solvers kept (one per structure key), least recently used first out."""
    MAX_STEP_FRACTION = 0.98
    """How far toward the cones' boundary each step may go (Clarabel's default is 0.99).

    Project with volatility and tracking error over hundreds of names (second-order cones
    of hundreds of entries) took 15-20% fewer iterations at 0.98 (0.97 alike, 0.95 a little
    worse), from n = 200 to 2000 and with 11 or 20 factors: long steps leave the iterates
    near the large cones' boundary, and the next steps are then short. Problems of a few
    dozen names take about half an iteration more (docs/performance-notes.md, "Risk
    cones: shared exposures", 2026-12-04).
    """

    STATIC_REGULARIZATION = 1e-10
    """The constant Clarabel adds to the KKT matrix's diagonal before factoring it (its
    default is 1e-8; dynamic regularization still guards the pivots).

    Closer to the true KKT system, each solve needs fewer refinement steps: 12-18% less
    time per iteration on project with risk cones, the same iterations and answers, and
    as many drawn problems solved (docs/performance-notes.md, "Risk cones: shared
    exposures", 2026-12-04).
    """

    BUILD_COST = 10.0
    """Every entry of the stand-in linear cost a solver is built with (then replaced by the
    request's own): it fixes Clarabel's cost scale per structure instead of per request
    (`_solver`). Measured on project with volatility and tracking error (n = 200, 500,
    2000): with 10 the iterations are those of the request's own cost (mean 20.2 against
    20.3 at n = 500); with a zero cost (no cost scaling) 21.2, with 0.01 to 1 more, with
    1000 25.3 (docs/performance-notes.md, 2026-12-04)."""

    RETRIED: ClassVar[frozenset[str]] = frozenset(
        {"AlmostSolved", "InsufficientProgress", "NumericalError"}
    )
    """Endings retried once with `CAREFUL` settings before the answer is left to the chain."""
    CAREFUL: ClassVar[dict[str, float]] = {"static_regularization_constant": 1e-8}
    """Clarabel's own static regularization, for the retry. With the engine's lighter one
    (`STATIC_REGULARIZATION`) two project requests with cones in about a hundred end
    "almost solved" at n = 1000 (requests 19 and 93 of the benchmark's case, 25-27
    iterations); with this one they are solved in 24-25 (about 60 ms with the first
    attempt), where the cvxpy chain took 240-320 ms. Clarabel's refinement tolerance as well
    solved request 19 but not 93 (docs/performance-notes.md, 2026-12-04, evening)."""

    def __init__(self) -> None:
        self._resident: dict[Hashable, tuple[tuple[Any, ...], FloatArray, FloatArray, Any]] = {}

    def solve(
        self, data: ConicData, *, key: Hashable | None = None, time_limit: float | None = None
    ) -> DirectSolution:
        """Solve `data`, reusing the resident solver of `key` when its patterns match.

        An ending in `RETRIED` is retried once, on a solver of its own with the `CAREFUL`
        settings, within what is left of `time_limit`; the outcome names both endings.
        """
        import clarabel

        started = time.perf_counter()
        solution = self._attempt(clarabel, data, key, time_limit, careful=False)
        first = solution.outcome.message
        if first not in self.RETRIED:
            return solution
        left = None if time_limit is None else time_limit - (time.perf_counter() - started)
        if left is not None and left < MIN_TIME_LIMIT_S:
            return solution
        retried = self._attempt(clarabel, data, None, left, careful=True)
        outcome = replace(
            retried.outcome,
            seconds=time.perf_counter() - started,
            message=f"{first}, then {retried.outcome.message} with Clarabel's regularization",
        )
        return replace(retried, outcome=outcome)

    def _attempt(
        self,
        clarabel: Any,
        data: ConicData,
        key: Hashable | None,
        time_limit: float | None,
        *,
        careful: bool,
    ) -> DirectSolution:
        started = time.perf_counter()
        try:
            solver = self._solver(clarabel, data, key, time_limit, careful=careful)
            result = solver.solve()
        except Exception as exc:  # the solver failing (bad data, panics) is a status
            text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if key is not None:
                self._resident.pop(key, None)
            seconds = time.perf_counter() - started
            return DirectSolution(SolveOutcome(self.name, SolveStatus.ERROR, seconds, message=text))
        seconds = time.perf_counter() - started
        text = str(result.status)
        status = self.STATUS_MAP.get(text, SolveStatus.ERROR)
        outcome = SolveOutcome(self.name, status, seconds, int(result.iterations), text)
        x = np.asarray(result.x, dtype=float)
        z = np.asarray(result.z, dtype=float)
        if not (np.isfinite(x).all() and np.isfinite(z).all()):
            return DirectSolution(outcome)
        return DirectSolution(outcome, x, z)

    def _solver(
        self,
        clarabel: Any,
        data: ConicData,
        key: Hashable | None,
        limit: float | None,
        *,
        careful: bool = False,
    ) -> Any:
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.presolve_enable = False
        settings.tol_gap_abs = INTERIOR_POINT_TOLERANCE
        settings.tol_gap_rel = INTERIOR_POINT_TOLERANCE
        settings.tol_feas = INTERIOR_POINT_TOLERANCE
        settings.iterative_refinement_reltol = INTERIOR_POINT_REFINEMENT_TOLERANCE
        settings.max_step_fraction = self.MAX_STEP_FRACTION
        settings.static_regularization_constant = self.STATIC_REGULARIZATION
        settings.max_iter = 200
        if careful:
            for name, value in self.CAREFUL.items():
                setattr(settings, name, value)
        settings.time_limit = (
            math.inf if limit is None or math.isinf(limit) else max(limit, MIN_TIME_LIMIT_S)
        )
        pattern = data.pattern()
        if key is not None and key in self._resident:
            known, P, A, solver = self._resident.pop(key)
            same = np.array_equal(P, data.P.data) and np.array_equal(A, data.A.data)
            if known == pattern and same:
                solver.update(q=data.q, b=data.b, settings=settings)
                self._resident[key] = (pattern, P, A, solver)
                return solver
        cones = [_cone(clarabel, kind, size) for kind, size in data.cones]
        # Clarabel scales the data once, when the solver is built (its equilibration of P
        # and A, and a cost scale that reads q), and an update is scaled the same way.
        # Built from the request's own P and A with a stand-in q (`BUILD_COST`) and b = 0,
        # and reused only for the same P and A, the scaling (so the answer) depends on the
        # request alone, not on which request built the solver: the same request gets the
        # same answer in any process and after any history (docs/decision-log.md).
        stand_in = np.full_like(data.q, self.BUILD_COST)
        solver = clarabel.DefaultSolver(
            data.P, stand_in, data.A, np.zeros_like(data.b), cones, settings
        )
        solver.update(q=data.q, b=data.b)
        if key is not None:
            self._resident[key] = (pattern, data.P.data.copy(), data.A.data.copy(), solver)
            while len(self._resident) > self.MAX_RESIDENT:
                self._resident.pop(next(iter(self._resident)))
        return solver


def _cone(clarabel: Any, kind: str, size: int) -> Any:
    if kind == "zero":
        return clarabel.ZeroConeT(size)
    if kind == "nonneg":
        return clarabel.NonnegativeConeT(size)
    return clarabel.SecondOrderConeT(size)


class DirectOSQP:
    """OSQP through its Python API: QPs only, warm-started from the previous answer, polished.

    Each structure key keeps one resident solver; a problem with the same patterns updates
    its vectors and matrix values in place and starts from the last answer of that key
    (primal and dual). The settings are the `OSQPAdapter`'s (1e-9, polishing). A problem
    with a second-order cone is not attempted (an error outcome: the chain solves it).
    """

    name: ClassVar[str] = OSQP_DIRECT
    STATUS_MAP: ClassVar[dict[str, SolveStatus]] = {
        "solved": SolveStatus.OPTIMAL,
        "solved inaccurate": SolveStatus.INACCURATE,
        "primal infeasible": SolveStatus.INFEASIBLE,
        "primal infeasible inaccurate": SolveStatus.INACCURATE,
        "dual infeasible": SolveStatus.UNBOUNDED,
        "dual infeasible inaccurate": SolveStatus.INACCURATE,
        "maximum iterations reached": SolveStatus.INACCURATE,
        "run time limit reached": SolveStatus.INACCURATE,
    }
    MAX_RESIDENT = 16

    def __init__(self) -> None:
        self._resident: dict[Hashable, tuple[tuple[Any, ...], Any]] = {}

    def solve(
        self, data: ConicData, *, key: Hashable | None = None, time_limit: float | None = None
    ) -> DirectSolution:
        """Solve the QP `data` (zero and nonnegative cones only)."""
        import osqp

        from solvers.tolerances import OSQP_TOLERANCE

        started = time.perf_counter()
        if any(kind == "soc" for kind, _ in data.cones):
            return DirectSolution(
                SolveOutcome(self.name, SolveStatus.ERROR, 0.0, message="not a QP (a cone)")
            )
        # b - A z in K:  zero rows are A z = b, nonnegative rows A z <= b.
        upper = data.b
        lower = np.full(len(data.b), -np.inf)
        row = 0
        for kind, size in data.cones:
            if kind == "zero":
                lower[row : row + size] = data.b[row : row + size]
            row += size
        # OSQP refuses infinity and 0; 1e10 s is its own "no limit".
        limit = (
            1e10
            if time_limit is None or math.isinf(time_limit)
            else max(time_limit, MIN_TIME_LIMIT_S)
        )
        pattern = data.pattern()
        found = self._resident.pop(key, None) if key is not None else None
        try:
            if found is not None and found[0] == pattern:
                solver = found[1]
                solver.update(q=data.q, l=lower, u=upper, Px=data.P.data, Ax=data.A.data)
                solver.update_settings(time_limit=limit)
            else:
                solver = osqp.OSQP()
                solver.setup(
                    data.P,
                    data.q,
                    data.A,
                    lower,
                    upper,
                    verbose=False,
                    eps_abs=OSQP_TOLERANCE,
                    eps_rel=OSQP_TOLERANCE,
                    polishing=True,
                    max_iter=20000,
                    time_limit=limit,
                )
            # A failed solve is a status here, not an exception.
            result = solver.solve(raise_error=False)
        except Exception as exc:  # the solver failing is a status
            text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            seconds = time.perf_counter() - started
            return DirectSolution(SolveOutcome(self.name, SolveStatus.ERROR, seconds, message=text))
        if key is not None:
            self._resident[key] = (pattern, solver)
            while len(self._resident) > self.MAX_RESIDENT:
                self._resident.pop(next(iter(self._resident)))
        seconds = time.perf_counter() - started
        text = str(result.info.status)
        status = self.STATUS_MAP.get(text, SolveStatus.ERROR)
        outcome = SolveOutcome(self.name, status, seconds, int(result.info.iter), text)
        if result.x is None or result.y is None:
            return DirectSolution(outcome)
        x = np.asarray(result.x, dtype=float)
        # OSQP's y is the multiplier of l <= A x <= u (positive on the upper side), which is
        # Clarabel's z for A x <= b.
        y = np.asarray(result.y, dtype=float)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            return DirectSolution(outcome)
        if key is not None:
            solver.warm_start(x=x, y=y)  # the next request of this structure starts here
        return DirectSolution(outcome, x, y)

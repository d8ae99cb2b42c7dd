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
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from models.typing import FloatArray
from solvers.base import MIN_TIME_LIMIT_S, SolveOutcome, SolveStatus
from solvers.tolerances import INTERIOR_POINT_TOLERANCE

__all__ = ["CLARABEL_DIRECT", "ConeSpec", "ConicData", "DirectClarabel", "DirectSolution"]

CLARABEL_DIRECT = "CLARABEL (direct)"
"""The solver name of answers from Clarabel's own API (attempts and `solver` read it)."""

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


class DirectClarabel:
    """Clarabel through its Python API, one resident solver per structure key.

    The settings are the `ClarabelAdapter`'s (the same tolerances), with presolve off so
    that data can be updated in place.
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

    def __init__(self) -> None:
        self._resident: dict[Hashable, tuple[tuple[Any, ...], Any]] = {}

    def solve(
        self, data: ConicData, *, key: Hashable | None = None, time_limit: float | None = None
    ) -> DirectSolution:
        """Solve `data`, reusing the resident solver of `key` when its patterns match."""
        import clarabel

        started = time.perf_counter()
        try:
            solver = self._solver(clarabel, data, key, time_limit)
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
        self, clarabel: Any, data: ConicData, key: Hashable | None, limit: float | None
    ) -> Any:
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.presolve_enable = False
        settings.tol_gap_abs = INTERIOR_POINT_TOLERANCE
        settings.tol_gap_rel = INTERIOR_POINT_TOLERANCE
        settings.tol_feas = INTERIOR_POINT_TOLERANCE
        settings.max_iter = 200
        settings.time_limit = (
            math.inf if limit is None or math.isinf(limit) else max(limit, MIN_TIME_LIMIT_S)
        )
        pattern = data.pattern()
        if key is not None and key in self._resident:
            known, solver = self._resident.pop(key)
            if known == pattern:
                solver.update(P=data.P.data, q=data.q, A=data.A.data, b=data.b, settings=settings)
                self._resident[key] = (pattern, solver)
                return solver
        cones = [_cone(clarabel, kind, size) for kind, size in data.cones]
        solver = clarabel.DefaultSolver(data.P, data.q, data.A, data.b, cones, settings)
        if key is not None:
            self._resident[key] = (pattern, solver)
            while len(self._resident) > self.MAX_RESIDENT:
                self._resident.pop(next(iter(self._resident)))
        return solver


def _cone(clarabel: Any, kind: str, size: int) -> Any:
    if kind == "zero":
        return clarabel.ZeroConeT(size)
    if kind == "nonneg":
        return clarabel.NonnegativeConeT(size)
    return clarabel.SecondOrderConeT(size)

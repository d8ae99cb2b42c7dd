"""The solver interface: one adapter per solver, statuses mapped to our own.

An adapter solves a compiled cvxpy problem in place (so variables and duals can be read
back) and reports a `SolveOutcome`. Only `SolveStatus.OPTIMAL` is an answer: an inaccurate
solution is a failure of that solver, and the chain moves on.
"""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import cvxpy as cp

__all__ = [
    "MIN_TIME_LIMIT_S",
    "MIN_UNTIMED_S",
    "CvxpyAdapter",
    "SolveOutcome",
    "SolveStatus",
    "SolverAdapter",
]

MIN_TIME_LIMIT_S = 1e-3
"""The smallest time limit handed to a solver (OSQP refuses 0)."""

MIN_UNTIMED_S = 0.5
"""A solver that cannot be given a time limit (ECOS) starts only with this much time left:
it may then overrun the deadline by one solve, never by an unbounded one."""


class SolveStatus(StrEnum):
    """The engine's view of how a solve ended."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    INACCURATE = "inaccurate"
    ERROR = "error"


@dataclass(frozen=True)
class SolveOutcome:
    """How one solver's attempt ended."""

    solver: str
    status: SolveStatus
    seconds: float
    iterations: int | None = None
    message: str = ""


class SolverAdapter:
    """Base adapter: a named solver with capabilities, settings and a status table.

    Subclasses set `name` (cvxpy's solver name), `package` (to test installation without
    importing), `supports_socp`, `certifies_infeasibility` (interior-point solvers do;
    first-order ones only suggest it) and `settings`.
    """

    name: ClassVar[str]
    package: ClassVar[str]
    supports_socp: ClassVar[bool] = False
    certifies_infeasibility: ClassVar[bool] = True
    settings: ClassVar[dict[str, Any]] = {}
    time_limit_option: ClassVar[str | None] = "time_limit"
    """The solver's wall-clock limit setting, in seconds (None: the solver has none)."""
    no_time_limit: ClassVar[float] = math.inf
    """The limit's value meaning "none". Always passed when there is no deadline: cvxpy
    keeps a warm-started solver's settings between solves, so a limit set for one request
    would otherwise stay for the next."""
    STATUS_MAP: ClassVar[dict[str, SolveStatus]] = {
        cp.OPTIMAL: SolveStatus.OPTIMAL,
        cp.OPTIMAL_INACCURATE: SolveStatus.INACCURATE,
        cp.INFEASIBLE: SolveStatus.INFEASIBLE,
        cp.INFEASIBLE_INACCURATE: SolveStatus.INACCURATE,
        cp.UNBOUNDED: SolveStatus.UNBOUNDED,
        cp.UNBOUNDED_INACCURATE: SolveStatus.INACCURATE,
        cp.USER_LIMIT: SolveStatus.INACCURATE,
        cp.SOLVER_ERROR: SolveStatus.ERROR,
    }

    @classmethod
    def is_installed(cls) -> bool:
        """True when the solver's package can be imported (checked without importing it)."""
        return importlib.util.find_spec(cls.package) is not None

    def solve(
        self,
        problem: cp.Problem,
        *,
        warm_start: bool = True,
        time_limit: float | None = None,
        ignore_dpp: bool = False,
    ) -> SolveOutcome:
        """Solve `problem` in place and map the result to a `SolveOutcome`.

        Parameters
        ----------
        problem
            The compiled problem; its variables and duals hold the answer afterwards.
        warm_start
            Start from the previous solution where the solver can.
        time_limit
            Seconds the solver may run (None: its own settings). A solver without a time
            limit setting is not started when less than `MIN_UNTIMED_S` is left.
        ignore_dpp
            Compile the problem with its Parameters' current values as constants, instead
            of through cvxpy's parametrized (DPP) form (see `solvers.chain.DPP_CELL_BUDGET`).
        """
        started = time.perf_counter()
        options = self.options(time_limit)
        if options is None:
            return SolveOutcome(
                self.name,
                SolveStatus.ERROR,
                0.0,
                message=f"not started: {time_limit:.3g} s left and the solver has no time limit",
            )
        try:
            with warnings.catch_warnings():
                # The status says the same, and the chain acts on it; no need to warn too.
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                problem.solve(
                    solver=self.name, warm_start=warm_start, ignore_dpp=ignore_dpp, **options
                )
        except Exception as exc:  # a solver (or its cvxpy interface) failing is a status
            text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            return SolveOutcome(
                self.name, SolveStatus.ERROR, time.perf_counter() - started, message=text
            )
        seconds = time.perf_counter() - started
        status = self.STATUS_MAP.get(problem.status, SolveStatus.ERROR)
        reason = self.doubt(problem) if status is SolveStatus.OPTIMAL else None
        if reason is not None:
            return SolveOutcome(self.name, SolveStatus.INACCURATE, seconds, None, reason)
        stats = problem.solver_stats
        iterations = getattr(stats, "num_iters", None) if stats is not None else None
        return SolveOutcome(self.name, status, seconds, iterations, message=str(problem.status))

    def options(self, time_limit: float | None) -> dict[str, Any] | None:
        """The settings of one solve within `time_limit` seconds (None: do not start).

        No `time_limit` means the solver's own "no limit" value, set explicitly; a limit is
        never below `MIN_TIME_LIMIT_S` (some solvers read 0 as "no limit", others refuse it).
        """
        if self.time_limit_option is None:
            start = time_limit is None or time_limit >= MIN_UNTIMED_S
            return dict(self.settings) if start else None
        if time_limit is None or math.isinf(time_limit):
            return {**self.settings, self.time_limit_option: self.no_time_limit}
        return {**self.settings, self.time_limit_option: max(time_limit, MIN_TIME_LIMIT_S)}

    def doubt(self, problem: cp.Problem) -> str | None:
        """Why an answer reported optimal should not be trusted (None: no reason)."""
        return None


class CvxpyAdapter(SolverAdapter):
    """Marker base for adapters that go through cvxpy's `Problem.solve`."""

"""The fallback chain: solvers in order, every attempt recorded, no inaccurate answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp

from solvers.base import SolveOutcome, SolverAdapter, SolveStatus
from solvers.clarabel import ClarabelAdapter
from solvers.direct import DirectClarabel, DirectSolver
from solvers.ecos import ECOSAdapter
from solvers.highs import HiGHSAdapter
from solvers.osqp import OSQPAdapter

__all__ = ["DPP_CELL_BUDGET", "ChainResult", "SolverChain", "TimeLeft", "default_chain"]

Verifier = Callable[[], str | None]
"""Called after an OPTIMAL solve; returns why the solution is rejected, or None."""

TimeLeft = Callable[[], float]
"""Seconds left until the request's deadline (<= 0: passed, or the request was abandoned)."""

DPP_CELL_BUDGET = 2_000_000
"""Largest (variables + 1) x (parameters + 1) of a cone problem compiled in cvxpy's
parametrized (DPP) form. For problems with second-order cones cvxpy reshapes its parameter
tensor to that many columns and converts it to CSC, so memory and time grow as the product:
at n = 1000 with a 20-factor volatility and tracking-error limit, 2.2 GB and 6.5 s for the
first solve, against 6 MB and 0.2 s compiled with the values as constants, while a DPP
re-solve saves only ~0.05 s (docs/performance-notes.md, "Memory"). Above the budget the
problem is compiled afresh at every solve."""


@dataclass
class ChainResult:
    """The chain's verdict and every attempt that led to it."""

    status: SolveStatus
    solver: str | None
    attempts: list[SolveOutcome] = field(default_factory=list)
    inexact: bool = False

    @property
    def optimal(self) -> bool:
        """True when some solver's answer was accepted."""
        return self.status is SolveStatus.OPTIMAL


class SolverChain:
    """Ordered solvers for QPs and for problems with second-order cones.

    `direct`: a solver the engine may call on cone data it assembled itself, before the
    chain (`solvers.direct`); None (the default of a chain built by hand) leaves every
    problem to the chain.
    """

    def __init__(
        self,
        qp: Sequence[SolverAdapter],
        socp: Sequence[SolverAdapter],
        *,
        direct: DirectSolver | None = None,
    ) -> None:
        if not qp or not socp:
            raise ValueError("a solver chain needs at least one QP and one SOCP solver")
        if not all(s.supports_socp for s in socp):
            raise ValueError("every solver of the SOCP chain must support cones")
        self.qp = list(qp)
        self.socp = list(socp)
        self.direct = direct

    def solve(
        self,
        problem: cp.Problem,
        *,
        needs_socp: bool,
        verify: Verifier | None = None,
        time_left: TimeLeft | None = None,
    ) -> ChainResult:
        """Solve with the first solver that gives an accepted answer.

        An OPTIMAL answer must also pass `verify`. When no solver gives one, a solution that
        its solver called inaccurate (cvxpy's optimal_inaccurate) but that passes `verify`
        is used, flagged `inexact`: interior-point solvers stop short of their tolerance on
        feasible sets without an interior, yet the point can be exactly feasible.

        With `time_left`, every solver gets the time left as its time limit, and no solver
        starts once it has run out (the result is then an error, with the attempts so far).
        """
        chain = self.socp if needs_socp else self.qp
        attempts: list[SolveOutcome] = []
        rescue: tuple[str, _Saved] | None = None
        ignore_dpp = needs_socp and dpp_cells(problem) > DPP_CELL_BUDGET
        for adapter in chain:
            limit = None if time_left is None else time_left()
            if limit is not None and limit <= 0:
                attempts.append(
                    SolveOutcome(adapter.name, SolveStatus.ERROR, 0.0, message="deadline passed")
                )
                break
            outcome = adapter.solve(problem, time_limit=limit, ignore_dpp=ignore_dpp)
            if outcome.status is SolveStatus.OPTIMAL and verify is not None:
                reason = verify()
                if reason is not None:
                    outcome = SolveOutcome(
                        adapter.name,
                        SolveStatus.INACCURATE,
                        outcome.seconds,
                        outcome.iterations,
                        reason,
                    )
            elif (
                rescue is None
                and verify is not None
                and outcome.message == cp.OPTIMAL_INACCURATE
                and verify() is None
            ):
                rescue = (adapter.name, _Saved.of(problem))
            attempts.append(outcome)
            if outcome.status is SolveStatus.OPTIMAL:
                return ChainResult(SolveStatus.OPTIMAL, adapter.name, attempts)
            if outcome.status in (SolveStatus.INFEASIBLE, SolveStatus.UNBOUNDED):
                if adapter.certifies_infeasibility:
                    return ChainResult(outcome.status, adapter.name, attempts)
        if rescue is not None:
            name, saved = rescue
            saved.restore()
            return ChainResult(SolveStatus.OPTIMAL, name, attempts, inexact=True)
        # Only uncertified solvers ran: believe them only when all of them agree.
        if attempts and all(a.status is SolveStatus.INFEASIBLE for a in attempts):
            return ChainResult(SolveStatus.INFEASIBLE, attempts[-1].solver, attempts)
        return ChainResult(SolveStatus.ERROR, None, attempts)


def dpp_cells(problem: cp.Problem) -> int:
    """(variables + 1) x (parameters + 1): the width of cvxpy's parameter tensor reshape."""
    variables = sum(int(v.size) for v in problem.variables())
    parameters = sum(int(p.size) for p in problem.parameters())
    return (variables + 1) * (parameters + 1)


@dataclass
class _Saved:
    """A solution's variable values and duals, to put back after later solvers ran."""

    values: list[tuple[cp.Variable, Any]]
    duals: list[tuple[cp.Constraint, Any]]

    @classmethod
    def of(cls, problem: cp.Problem) -> _Saved:
        return cls(
            [(v, None if v.value is None else v.value.copy()) for v in problem.variables()],
            [(c, c.dual_value) for c in problem.constraints],
        )

    def restore(self) -> None:
        for variable, value in self.values:
            variable.value = value
        for constraint, dual in self.duals:
            if dual is not None:
                constraint.save_dual_value(dual)


def default_chain() -> SolverChain:
    """Clarabel, HiGHS, OSQP, ECOS for QPs; Clarabel then ECOS where a cone is needed.

    Clarabel's own API answers first where the engine can assemble the problem itself
    (`direct`); the chain is the fallback.

    Order by measurement (benchmarks/, n = 500, base policy set): Clarabel solved the project
    QP in ~105 ms and scale_back in ~29 ms, HiGHS in ~475 / ~24 ms, while OSQP at the 1e-9
    tolerance a compliance answer needs took 1.2 s / 270 ms (and often stopped inaccurate).
    """
    qp = [
        a() for a in (ClarabelAdapter, HiGHSAdapter, OSQPAdapter, ECOSAdapter) if a.is_installed()
    ]
    socp = [a() for a in (ClarabelAdapter, ECOSAdapter) if a.is_installed()]
    direct = DirectClarabel() if ClarabelAdapter.is_installed() else None
    return SolverChain(qp=qp, socp=socp, direct=direct)

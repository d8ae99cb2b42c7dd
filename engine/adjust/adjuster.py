"""The adjuster (SPEC section 6): the closest compliant decision, rounded and re-checked.

Per method the path is: fill the cached problem with this request's parameters and row
bounds, solve through the fallback chain (a solution that breaks a row bound by more than
the tolerance is rejected), round the trades to lots, re-check every candidate with the
checker and keep the closest compliant one. When rounding breaks a row, the problem is
solved again with every bound tightened by the most that rounding can move that row
(`Block.perturbation_bound`) plus `SOLVER_MARGIN`, which makes any rounding of the new solution
safe and absorbs solver error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np

from engine.adjust.binding import binding_rows
from engine.adjust.bounds import (
    SOLVER_MARGIN,
    excess,
    max_violation,
    shifted,
    solve_bounds,
    total_violation,
    worst_case,
)
from engine.adjust.cardinality import choose_support
from engine.adjust.fast_solvers import SEPARABLE, FastSolvers
from engine.adjust.polish import POLISH_ROUNDS, linearized
from engine.adjust.problems import (
    CompiledProblem,
    ProblemCache,
    fixed_rows_infeasible,
)
from engine.adjust.rounding.lots import lot_candidates
from engine.adjust.rounding.passes import rounding_passes
from engine.check.checker import check
from engine.compile.layout import Layout
from engine.deadline import NO_DEADLINE, Deadline
from engine.tolerances import TOLERANCE
from models import AdjustmentMethod
from models.typing import FloatArray
from solvers import ChainResult, SolveOutcome, SolverChain, SolveStatus
from solvers.chain import Verifier

__all__ = ["SEPARABLE", "Adjuster", "Adjustment", "AttemptResult"]

TARGETED_ROUNDS = 4


@dataclass
class Adjustment:
    """A compliant, lot-rounded replacement decision."""

    method: AdjustmentMethod
    t: FloatArray
    w: FloatArray
    distance: float
    solver: str
    attempts: list[SolveOutcome]
    binding: list[tuple[int, int, float]]
    notes: list[str] = field(default_factory=list)


@dataclass
class AttemptResult:
    """How one method ended: an adjustment, infeasibility, or a failure to solve."""

    status: Literal["adjusted", "infeasible", "failed"]
    adjustment: Adjustment | None = None
    attempts: list[SolveOutcome] = field(default_factory=list)
    message: str = ""
    notes: list[str] = field(default_factory=list)
    continuous_distance: float | None = None
    """The objective of SPEC section 6 at the continuous optimum (the exact bounds' solve,
    before rounding to lots); None when no solver answered that solve."""


class Adjuster:
    """Solves the adjustment problems through a solver chain and a compile cache."""

    def __init__(self, chain: SolverChain, cache: ProblemCache, *, separable: bool = True) -> None:
        self.chain = chain
        self.cache = cache
        # The separable solver and the direct conic solve, tried before the chain.
        self.fast = FastSolvers(chain, separable=separable)
        # Polishing wants one active-set-exact QP solver: HiGHS if the chain has it. (One
        # solver, so that each round's point is that solver's answer.)
        exact = sorted(chain.qp, key=lambda a: a.name != "HIGHS")[:1]
        self.polish_chain = SolverChain(qp=exact, socp=chain.socp)

    def attempt(
        self,
        layout: Layout,
        method: AdjustmentMethod,
        *,
        cure_passive: bool,
        deadline: Deadline = NO_DEADLINE,
    ) -> AttemptResult:
        """Solve one method (`scale_back` or `project`) and return a verified adjustment.

        The problem is built from `layout.for_solver()` (rules that are not convex replaced
        by their convex restrictions; the bounds, margins and solver checks refer to its
        rows, and so do the binding rows' indices), while every rounded candidate is checked
        against the exact rows of `layout`.

        Every solver gets the time left until `deadline` as its limit, and each round, each
        polishing round and the integer search check it first: `DeadlineExceeded` (or
        `RequestCancelled`) ends the attempt.
        """
        space: Literal["scale_back", "project"] = (
            "scale_back" if method == AdjustmentMethod.SCALE_BACK else "project"
        )
        # A cap on open positions: choose the names its restriction lets be open.
        choose_support(layout, space, cure_passive=cure_passive, deadline=deadline)
        exact, layout = layout, layout.for_solver()
        strict = layout.strict()
        compiled = self.cache.get_problem(space, layout, strict)
        base = [solve_bounds(layout, k, cure_passive=cure_passive) for k in strict]
        attempts: list[SolveOutcome] = []
        notes: list[str] = []
        solved_once = False
        continuous: float | None = None
        # Bounds to solve with: the exact ones first. When rounding to lots breaks rows, the
        # rows it broke are tightened by a growing multiple of what rounding broke them by
        # (a few times), and last by the most rounding could ever move each row (which makes
        # any rounding safe, if that is still feasible).
        margins = [np.zeros(len(b)) for b in base]
        rounds: list[tuple[str, list[FloatArray]]] = [("exact", base)]
        targeted = 0
        while rounds:
            deadline.check("the adjustment's next solve")
            label, bounds = rounds.pop(0)
            # The rows' Parameters wait for the chain: the separable solver reads the layout.
            compiled.fill(layout, strict, bounds, rows=False)
            result = fixed_rows_infeasible(compiled) or self._solve(
                layout, strict, base, compiled, deadline
            )
            attempts += result.attempts
            # A chain cut short by the deadline has no answer: say so, not "solvers failed".
            deadline.check("the adjustment's rounding")
            if result.status is SolveStatus.INFEASIBLE:
                if label == "exact":
                    return AttemptResult("infeasible", attempts=attempts)
                if label == "targeted":
                    rounds.append(("worst case", worst_case(layout, strict, base)))
                continue
            solved, solver = compiled, result.solver
            if not result.optimal and compiled.needs_socp and compiled.solution is not None:
                polished = self._polish(layout, compiled, strict, bounds, base, attempts, deadline)
                solved, solver = polished if polished is not None else (compiled, None)
            if solver is None or not (result.optimal or solved is not compiled):
                # A solution rejected for breaking a limit by more than the tolerance may
                # pass once the limits leave room for solver error: try a tightened round.
                if label == "exact":
                    rounds.append(("worst case", worst_case(layout, strict, base)))
                continue
            solved_once = True
            if label == "exact":
                w = layout.snap.w0 + solved.delta(layout.snap.n)
                continuous = float(np.sum((w - layout.snap.w_hat) ** 2))
            if result.inexact:
                notes.append(
                    f"{solver} called its solution inaccurate; it was used because it "
                    "passed the exact check"
                )
            found, excess = self._round(
                exact,
                layout,
                solved,
                method,
                solver,
                attempts,
                cure_passive=cure_passive,
                deadline=deadline,
            )
            if found is not None:
                found.notes = notes
                # The continuous optimum's binding rows, whichever rounding was kept.
                found.binding = binding_rows(solved, strict, layout)
                return AttemptResult("adjusted", found, attempts, continuous_distance=continuous)
            notes.append(f"rounding to lots broke a limit after the {label} solve")
            if label in ("exact", "targeted") and targeted < TARGETED_ROUNDS and excess:
                growth = 4.0**targeted
                targeted += 1
                margins = [
                    m + np.where(e > 0, growth * (2 * e + SOLVER_MARGIN), 0.0)
                    for m, e in zip(margins, excess, strict=True)
                ]
                rounds.append(("targeted", shifted(layout, strict, base, margins)))
            elif label != "worst case":
                rounds.append(("worst case", worst_case(layout, strict, base)))
        if not solved_once:
            reasons = "; ".join(f"{a.solver}: {a.status.value} ({a.message})" for a in attempts)
            return AttemptResult(
                "failed", attempts=attempts, message=f"every solver failed: {reasons}"
            )
        return AttemptResult(
            "failed",
            attempts=attempts,
            notes=notes,
            message="no lot-rounded decision near the optimum passes the check",
            continuous_distance=continuous,
        )

    def _solve(
        self,
        layout: Layout,
        strict: list[int],
        base: list[FloatArray],
        compiled: CompiledProblem,
        deadline: Deadline,
    ) -> ChainResult:
        """The first verified answer of: the separable solver, the direct conic solve, the chain.

        The separable solver and the direct solve answer only when their solution passes
        the exact check; otherwise (or when the problem is not of their kind) the next one
        runs, and every attempt is listed.
        """
        verify = partial(self._verify, layout, strict, base, compiled)
        tried: list[SolveOutcome] = []
        for fast in (self.fast.separable_solve, self.fast.direct_solve):
            outcome = fast(layout, strict, compiled, deadline)
            if outcome is None:
                continue
            reason = verify() if outcome.status is SolveStatus.OPTIMAL else outcome.message
            if reason is None:
                return ChainResult(SolveStatus.OPTIMAL, outcome.solver, [*tried, outcome])
            status = (
                SolveStatus.INACCURATE if outcome.status is SolveStatus.OPTIMAL else outcome.status
            )
            tried.append(
                SolveOutcome(outcome.solver, status, outcome.seconds, outcome.iterations, reason)
            )
        compiled.fill_rows(layout, strict)
        result = self.chain.solve(
            compiled.problem,
            needs_socp=compiled.needs_socp,
            verify=_loading(compiled, verify),
            time_left=deadline.time_left,
        )
        compiled.load_cvxpy_solution()
        result.attempts[:0] = tried
        return result

    def _polish(
        self,
        layout: Layout,
        compiled: CompiledProblem,
        strict: list[int],
        bounds: list[FloatArray],
        base: list[FloatArray],
        attempts: list[SolveOutcome],
        deadline: Deadline,
    ) -> tuple[CompiledProblem, str] | None:
        """Solve on the cones' tangent planes from the approximate point (engine.adjust.polish)."""
        start = attempts[-1].solver if attempts else "solver"
        w = layout.snap.w0 + compiled.delta(layout.snap.n)
        for _ in range(POLISH_ROUNDS):
            deadline.check("polishing")
            planes = linearized(layout, w)
            polished = self.cache.get_problem(compiled.space, planes, strict)
            polished.fill(planes, strict, bounds)
            result = self.polish_chain.solve(
                polished.problem,
                needs_socp=False,
                verify=_loading(polished, partial(self._verify, layout, strict, base, polished)),
                time_left=deadline.time_left,
            )
            polished.load_cvxpy_solution()
            attempts += [
                SolveOutcome(
                    f"{a.solver} (cones linearized)", a.status, a.seconds, a.iterations, a.message
                )
                for a in result.attempts
            ]
            if result.optimal:
                return polished, f"{result.solver} (cones linearized at the {start} point)"
            if polished.solution is None:
                return None
            w = layout.snap.w0 + polished.delta(layout.snap.n)
        return None

    def _verify(
        self, layout: Layout, strict: list[int], bounds: list[FloatArray], compiled: CompiledProblem
    ) -> str | None:
        if compiled.solution is None:
            return "solver returned no solution"
        w = layout.snap.w0 + compiled.delta(layout.snap.n)
        worst = max_violation(layout, strict, bounds, w)
        if worst > TOLERANCE:
            return f"solution breaks a limit by {worst:.3g} (tolerance {TOLERANCE:g}); rejected"
        return None

    def _round(
        self,
        exact: Layout,
        layout: Layout,
        compiled: CompiledProblem,
        method: AdjustmentMethod,
        solver: str,
        attempts: list[SolveOutcome],
        *,
        cure_passive: bool,
        deadline: Deadline,
    ) -> tuple[Adjustment | None, list[FloatArray]]:
        """The closest compliant lot-rounded version of the continuous solution, if any.

        Its binding rows are left empty (the caller's: they belong to the continuous
        solution). Candidates are checked against the exact rows (`exact`); `layout` is the
        solver's.
        Without one, also returns each solver row's excess over its bound at the least
        violating rounding tried, for a targeted re-solve.
        """
        strict, exact_strict = layout.strict(), exact.strict()
        snap = layout.snap
        t_continuous = snap.trades_from_weights(snap.w0 + compiled.delta(snap.n))
        shrink_only = compiled.space == "scale_back"
        bounds = [solve_bounds(layout, k, cure_passive=cure_passive) for k in strict]
        best: Adjustment | None = None
        failed: list[FloatArray] = []

        def consider(t: FloatArray) -> None:
            nonlocal best
            w = snap.weights_from_trades(t)
            if not check(exact, w, cure_passive=cure_passive, indices=exact_strict).is_compliant:
                failed.append(w)
                return
            distance = float(np.sum((w - snap.w_hat) ** 2))
            if best is None or distance < best.distance:
                best = Adjustment(method, t, w, distance, solver, list(attempts), [])

        for t in lot_candidates(snap, t_continuous, shrink_only=shrink_only):
            consider(t)
        if best is None and (snap.lots > 0).any():
            # The fallbacks, computed one at a time: stop at the first that passes.
            for t in rounding_passes(
                layout, strict, bounds, t_continuous, shrink_only=shrink_only, deadline=deadline
            ):
                consider(t)
                if best is not None:
                    break
        if best is not None:
            return best, []
        if not failed:
            return None, []
        # The least violating rounding tried (the first of equals), scored only now: most
        # requests end with a candidate that passes.
        least = min(failed, key=partial(total_violation, layout, strict, bounds))
        return None, excess(layout, strict, bounds, least)

    @staticmethod
    def cancelling_complies(layout: Layout, *, cure_passive: bool) -> bool:
        """True when cancelling every trade would be compliant (always, unless curing)."""
        w = layout.snap.w0
        return check(layout, w, cure_passive=cure_passive, indices=layout.strict()).is_compliant


def _loading(compiled: CompiledProblem, verify: Verifier) -> Verifier:
    """`verify`, run on the cvxpy form's answer (copied into `compiled` first)."""

    def run() -> str | None:
        compiled.load_cvxpy_solution()
        return verify()

    return run

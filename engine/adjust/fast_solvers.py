"""The solvers the adjuster tries before its chain, each for the problems of its kind.

`FastSolvers.separable_solve` (`engine.adjust.separable.qp`) answers problems whose rows
are affine or sums of one-name absolute values, and, for a large `project` with risk
cones, the problem without them when its optimum holds them. `FastSolvers.direct_solve`
assembles the problem as cone data (`engine.adjust.conic`) for Clarabel's own API, over a
working set of names first for a large `project` (`engine.adjust.screening`). Each writes
its answer into the compiled problem and returns its outcome, or None when the problem is
not of its kind; the adjuster verifies every answer exactly (`Adjuster._solve`).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from engine.adjust.conic import ColumnCache, assemble
from engine.adjust.problems import OBJECTIVE_SCALE, CompiledProblem
from engine.adjust.screening import SCREEN_FROM, screened_solve
from engine.adjust.separable.qp import solve_separable
from engine.compile.layout import Layout
from engine.deadline import Deadline
from solvers import SolveOutcome, SolverChain, SolveStatus

__all__ = ["RELAX_CONES_FROM", "SEPARABLE", "FastSolvers"]

SEPARABLE = "SEPARABLE"
"""The solver name of answers from `engine.adjust.separable.qp` (tried before the chain)."""

RELAX_CONES_FROM = 1000
"""Names of V from which `project` with risk cones first solves the problem without them.

When the separable solver's optimum of the linear rows alone holds every cone, it is the
answer, in a few milliseconds instead of an interior-point solve of every name with two
cones (at n = 2000, 30 of 60 of the benchmark's requests; median 75 to 22 ms). When it
does not, the attempt is lost: 3 ms at n = 500, 4 at 1000, 8 at 2000. At n = 500 the
cone solve is short enough that the loss outweighs the gain in the median and the tail;
`scale_back` (a cone solve over the traded names only, 3 ms) never gains
(docs/performance-notes.md, "Cones that do not bind and working sets", 2026-12-05).
"""


class FastSolvers:
    """The separable solver and the direct conic solve, with their switches.

    Each switch is on by default; off, for comparison: `separable` (the chain alone),
    `relax_cones` (no relaxation of the cones) and `screening` (the whole conic problem).
    """

    def __init__(self, chain: SolverChain, *, separable: bool = True) -> None:
        self.chain = chain  # its `direct` solver is read at every solve
        self.separable = separable
        self.relax_cones = True
        self.relax_cones_from = RELAX_CONES_FROM
        self.screening = True
        self.screen_from = SCREEN_FROM
        # The direct solves' column-compressed block matrices, kept between requests.
        self.columns = ColumnCache()

    def separable_solve(
        self, layout: Layout, strict: list[int], compiled: CompiledProblem, deadline: Deadline
    ) -> SolveOutcome | None:
        """Solve with `engine.adjust.separable.qp` into the compiled problem's answer.

        None (nothing written) when the problem is not of its kind or it found no
        certified optimum; the next solver then runs.

        With risk cones (`project` over `RELAX_CONES_FROM` names or more), the problem
        without them is solved: when its optimum holds every cone (exactly, no tolerance)
        it is the whole problem's optimum, the cones' multipliers zero.
        """
        if not self.separable or compiled.target is None:
            return None
        cones = [p for p, k in enumerate(strict) if layout.rowsets[k].block.needs_cone]
        if cones and not (
            self.relax_cones
            and compiled.space == "project"
            and layout.snap.n >= self.relax_cones_from
        ):
            return None
        started = time.perf_counter()
        d = compiled.target
        if compiled.space == "scale_back":
            assert compiled.lower is not None and compiled.upper is not None
            lower, upper = compiled.lower, compiled.upper
            columns: tuple[int, ...] | None = compiled.traded
        else:
            lower, upper, columns = np.full(len(d), -np.inf), np.full(len(d), np.inf), None
        memo = compiled.separable_memo
        bounds = compiled.filled_bounds
        kept = [p for p in range(len(strict)) if p not in cones]
        if cones:  # the memo is per row set position: the relaxation keeps one of its own
            memo = memo.setdefault("without cones", {})
        solution = solve_separable(
            layout,
            [strict[p] for p in kept],
            [bounds[p] for p in kept],
            d,
            lower,
            upper,
            columns,
            memo,
        )
        if solution is None:
            return None
        duals = [np.zeros(layout.rowsets[k].block.rows) for k in strict]
        for p, found in zip(kept, solution.duals, strict=True):
            duals[p] = found
        if cones:
            delta = np.zeros(layout.snap.n)
            delta[slice(None) if columns is None else list(columns)] = solution.z
            w = layout.snap.w0 + delta
            for p in cones:
                rowset = layout.rowsets[strict[p]]
                values = rowset.block.values(w)
                if (values > bounds[p] if rowset.sense == "le" else values < bounds[p]).any():
                    return None
        # The problem's objective is OBJECTIVE_SCALE * ||z - d||^2, twice the separable
        # solver's 1/2 ||z - d||^2 times OBJECTIVE_SCALE: its duals are scaled alike.
        compiled.set_solution(solution.z, [2.0 * OBJECTIVE_SCALE * found for found in duals])
        seconds = time.perf_counter() - started
        return SolveOutcome(SEPARABLE, SolveStatus.OPTIMAL, seconds, solution.iterations)

    def direct_solve(
        self, layout: Layout, strict: list[int], compiled: CompiledProblem, deadline: Deadline
    ) -> SolveOutcome | None:
        """Solve the problem assembled as cone data (`engine.adjust.conic`) with Clarabel's API.

        None when the chain has no direct solver or a row set has no conic form; else the
        solver's outcome, with its answer written into `compiled` when it has one.
        """
        direct = self.chain.direct
        if direct is None or compiled.space == "elastic" or compiled.target is None:
            return None
        box = None
        if compiled.space == "scale_back":
            assert compiled.lower is not None and compiled.upper is not None
            box = (compiled.lower, compiled.upper)
        started = time.perf_counter()
        if compiled.space == "project" and self.screening and layout.snap.n >= self.screen_from:
            screened = screened_solve(
                layout,
                strict,
                compiled.filled_bounds,
                compiled.target,
                scale=OBJECTIVE_SCALE,
                solve=lambda data: direct.solve(data, time_limit=deadline.time_left()),
                cache=self.columns,
                time_left=deadline.time_left,
            )
            if screened is not None:
                compiled.set_solution(screened.x, screened.duals)
                return replace(screened.outcome, seconds=time.perf_counter() - started)
        assembly = assemble(
            layout,
            strict,
            compiled.filled_bounds,
            columns=list(compiled.traded) if compiled.space == "scale_back" else None,
            target=compiled.target,
            box=box,
            scale=OBJECTIVE_SCALE,
            cache=self.columns,
            constant=True,
        )
        if assembly is None:
            return None
        # A project problem keeps its structure between requests: its solver stays resident.
        key = ("project", layout.structure(strict)) if compiled.space == "project" else None
        solved = direct.solve(assembly.data, key=key, time_limit=deadline.time_left())
        # The time of the assembly and the solve together.
        outcome = replace(solved.outcome, seconds=time.perf_counter() - started)
        if solved.x is not None and solved.z is not None:
            compiled.set_solution(solved.x[: assembly.columns], assembly.duals(solved.z))
        return outcome

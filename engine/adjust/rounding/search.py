"""Whole-lot rounding as a small integer program, for when rounding each trade fails.

Rounding trades one at a time (engine.adjust.rounding.lots) fails where the continuous
optimum lies on a row that many trades move together, held exactly at its bound: a sector in
passive breach ("no worse than before"), a cash floor, an issuer cap. Every lot rounded up
on one side of that row must be paid for by a lot rounded the other way, and a greedy pass
rarely finds the combination. An integer program over the lot counts does: each trade may
take a lot count within one lot of the continuous optimum, the rows the solver can express
linearly must hold, and the objective keeps the rounded weights close to the proposal.

The answer is only a candidate: the adjuster checks it against the exact rows, as every
other rounding. Rows this program cannot express (every block that opts out of
`Block.integer`: risk cones, top-k, CVaR, custom expressions) are left to that check.
"""

from __future__ import annotations

from collections.abc import Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.layout import Layout
from engine.deadline import NO_DEADLINE, Deadline
from engine.tolerances import LOT_UNITS_SNAP, MIP_FEASIBILITY
from models.typing import BoolArray, FloatArray, IntArray
from solvers.base import MIN_TIME_LIMIT_S

__all__ = ["NODE_LIMIT", "TIME_LIMIT_S", "integer_rounding"]

NODE_LIMIT = 1_000
"""Branch-and-bound nodes of one integer solve. The cap that normally binds: it is counted,
not timed, so the same request gets the same answer on a busy machine as on an idle one
(every search in the engine tests closes at the root node)."""

TIME_LIMIT_S = 2.0
"""Wall-clock safety net of one integer solve; the search is a last resort and must stay
bounded even when single nodes are slow."""


def integer_rounding(
    layout: Layout,
    strict: Sequence[int],
    bounds: Sequence[FloatArray],
    t: FloatArray,
    *,
    shrink_only: bool,
    deadline: Deadline = NO_DEADLINE,
    time_limit: float = TIME_LIMIT_S,
) -> FloatArray | None:
    """Lot-rounded trades near the continuous trades `t` satisfying the linear rows.

    `layout` and `strict` name the solver's row sets and `bounds` their bounds (as in the
    adjustment problem). The search counts against `deadline`: it is checked before the
    program is built, between its row sets and before the solve, and the solve gets the
    time left when that is shorter than `time_limit` (`TIME_LIMIT_S`). Trades in
    fractional instruments (lot 0), trades kept as proposed and close-outs are constants;
    only the other trades are integer variables, and only the rows they move are
    constraints. Returns None when there is nothing to round, no row to hold, or no
    integer point within one lot of `t` (or none found in time).

    Raises
    ------
    DeadlineExceeded
        The deadline passed before or while the program was built.
    RequestCancelled
        The request was abandoned.
    """
    deadline.check("the integer lot search")
    snap = layout.snap
    lots = snap.lots
    free = np.flatnonzero((lots > 0) & (t != snap.t) & (t != -snap.q))
    if len(free) == 0:
        return None
    units = t[free] / lots[free]
    low, high = np.floor(units + LOT_UNITS_SNAP) - 1, np.ceil(units - LOT_UNITS_SNAP) + 1
    if shrink_only:
        proposal = snap.t[free] / lots[free]
        low = np.maximum(low, np.minimum(proposal, 0))
        high = np.minimum(high, np.maximum(proposal, 0))
    # Bounds on the variable itself, not as constraints: cvxpy's interval arithmetic over
    # unbounded variables multiplies zeros by infinities.
    count = cp.Variable(len(free), integer=True, bounds=[low, high])
    fixed = t.copy()
    fixed[free] = 0.0
    # Post-trade weights are affine in the lot counts: w = w_fixed + S count, S the lot
    # weights of the free names (sparse: a projection may trade every name, and a dense
    # n x (traded) matrix would be the n^2 term a request's memory must not have). Each
    # row is built as its constant at w_fixed plus its free columns times the counts.
    scale = lots[free] * snap.prices[free] / snap.nav
    forms = _CountForms(snap.weights_from_trades(fixed), free, scale, count)
    constraints: list[cp.Constraint] = []
    for k, bound in zip(strict, bounds, strict=True):
        deadline.check("the integer lot search's set-up")
        rowset = layout.rowsets[k]
        forms.upper, forms.bound = rowset.sense == "le", np.asarray(bound, dtype=float)
        row = rowset.block.integer(forms)
        if row is not None:
            constraints += row
    if forms.broken:
        return None
    if not constraints:
        return None
    # Distance to the proposal, linearized around the continuous optimum: the quadratic
    # term left out is at most one lot's weight squared per trade. Only the free names'
    # weights move: `w - w_star` is `scale count - t_free scale` there, constant elsewhere.
    w_star = snap.weights_from_trades(t)
    gradient = 2 * (w_star - snap.w_hat)
    moved = cp.multiply(scale, count) - (w_star[free] - forms.w_fixed[free])
    objective = gradient[free] @ moved + cp.sum(cp.multiply(2 * scale, cp.abs(moved)))
    problem = cp.Problem(cp.Minimize(objective), constraints)
    try:
        # Canonicalized here, inside the deadline (the solve reuses it): the solver's time
        # limit bounds only the solver.
        problem.get_problem_data(cp.HIGHS)
    except cp.error.SolverError:
        return None
    deadline.check("the integer lot search's solve")
    limit = min(time_limit, deadline.remaining())
    try:
        # Feasibility tolerances far below the checker's 1e-9: a point HiGHS accepts must
        # also pass the exact check (one lot moves a weight by about 1e-5).
        problem.solve(
            solver=cp.HIGHS,
            verbose=False,
            time_limit=max(limit, MIN_TIME_LIMIT_S),
            mip_max_nodes=NODE_LIMIT,
            mip_feasibility_tolerance=MIP_FEASIBILITY,
            primal_feasibility_tolerance=MIP_FEASIBILITY,
        )
    except cp.error.SolverError:
        return None
    if count.value is None or problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return None
    out = fixed.copy()
    out[free] = np.round(count.value) * lots[free]
    return out


class _CountForms:
    """Each block kind's rows over the lot counts (`engine.compile.representations.IntegerForms`).

    Post-trade weights are `w_fixed + S count` with `S` the lot weights of the `free`
    names; a matrix `M` maps them to `M w_fixed` plus `M[:, free] S` times the counts, and
    only the rows (or terms) with an entry in a free column are expressions. A row no free
    trade moves is a constant: one past its bound by more than `MIP_FEASIBILITY` makes
    the program infeasible (`broken`), as it would be for the solver. Holds the current
    row set's sense and bound; a kind the program cannot express answers None.
    """

    def __init__(
        self, w_fixed: FloatArray, free: IntArray, scale: FloatArray, count: cp.Variable
    ) -> None:
        self.w_fixed = w_fixed
        self.free = free
        self.scale = scale
        self.count = count
        self.upper = True
        self.bound = np.zeros(0)
        self.broken = False

    def _split(
        self, matrix: FloatArray | sp.spmatrix, c: FloatArray
    ) -> tuple[FloatArray, BoolArray, sp.csr_matrix]:
        """`matrix w + c` at the fixed weights, which rows free trades move, and how."""
        csr = sp.csr_matrix(matrix)
        constant = np.asarray(csr @ self.w_fixed, dtype=float).ravel() + c
        moving = sp.csr_matrix(csr[:, self.free] @ sp.diags(self.scale))
        moving.eliminate_zeros()
        return constant, np.diff(moving.indptr) > 0, moving

    def _hold(self, value: FloatArray, bound: FloatArray) -> None:
        """Constant rows: past their bound by more than the solver's tolerance breaks."""
        gap = value - bound if self.upper else bound - value
        if np.any(gap > MIP_FEASIBILITY):
            self.broken = True

    def affine(self, block: AffineBlock) -> list[cp.Constraint] | None:
        constant, varies, moving = self._split(block.A, block.c)
        self._hold(constant[~varies], self.bound[~varies])
        if not varies.any():
            return []
        value = moving[varies] @ self.count + constant[varies]
        bound = self.bound[varies]
        return [value <= bound] if self.upper else [value >= bound]

    def abs_sum(self, block: AbsSumBlock) -> list[cp.Constraint] | None:
        if not self.upper:  # not convex
            return None
        constant, varies, moving = self._split(block.A, block.c)
        fixed_terms = np.abs(np.where(varies, 0.0, constant))
        n_terms = len(constant)
        G = sp.identity(n_terms, format="csr") if block.G is None else sp.csr_matrix(block.G)
        k_terms = np.zeros(G.shape[0]) if block.k is None else np.asarray(block.k)
        rest = np.asarray(G @ fixed_terms, dtype=float).ravel() + k_terms
        held = sp.csr_matrix(G[:, np.flatnonzero(varies)])
        held.eliminate_zeros()
        rows = np.diff(held.indptr) > 0
        self._hold(rest[~rows], self.bound[~rows])
        if not rows.any():
            return []
        terms = cp.abs(moving[varies] @ self.count + constant[varies])
        return [held[rows] @ terms + rest[rows] <= self.bound[rows]]

    def unsupported(self, block: Block) -> list[cp.Constraint] | None:
        return None

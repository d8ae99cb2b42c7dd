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
from engine.tolerances import LOT_UNITS_SNAP, MIP_FEASIBILITY
from models.typing import FloatArray
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
    time_limit: float = TIME_LIMIT_S,
) -> FloatArray | None:
    """Lot-rounded trades near the continuous trades `t` satisfying the linear rows.

    `layout` and `strict` name the solver's row sets and `bounds` their bounds (as in the
    adjustment problem); `time_limit` caps the search's wall clock (the adjuster passes
    the request's time left when that is shorter than `TIME_LIMIT_S`). Trades in
    fractional instruments (lot 0), trades kept as proposed and close-outs are left as they
    are. Returns None when there is nothing to round, no
    row to hold, or no integer point within one lot of `t` (or none found in time).
    """
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
    # Post-trade weights are affine in the lot counts: w = w_fixed + S count.
    scale = lots[free] * snap.prices[free] / snap.nav
    w_fixed = snap.weights_from_trades(fixed)
    # Sparse: a projection may trade every name, and a dense n x (traded) matrix would be
    # the n^2 term a request's memory must not have.
    select = sp.csr_matrix((scale, (free, np.arange(len(free)))), shape=(snap.n, len(free)))
    w = w_fixed + select @ count

    constraints: list[cp.Constraint] = []
    forms = _CountForms(w)
    for k, bound in zip(strict, bounds, strict=True):
        rowset = layout.rowsets[k]
        forms.upper, forms.bound = rowset.sense == "le", bound
        row = rowset.block.integer(forms)
        if row is not None:
            constraints += row
    if not constraints:
        return None
    # Distance to the proposal, linearized around the continuous optimum: the quadratic
    # term left out is at most one lot's weight squared per trade.
    w_star = snap.weights_from_trades(t)
    gradient = 2 * (w_star - snap.w_hat)
    moved = w - w_star
    objective = gradient @ moved + cp.sum(cp.multiply(2 * scale, cp.abs(moved[free])))
    problem = cp.Problem(cp.Minimize(objective), constraints)
    try:
        # Feasibility tolerances far below the checker's 1e-9: a point HiGHS accepts must
        # also pass the exact check (one lot moves a weight by about 1e-5).
        problem.solve(
            solver=cp.HIGHS,
            verbose=False,
            time_limit=max(time_limit, MIN_TIME_LIMIT_S),
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

    Holds the post-trade weights `w` (affine in the counts) and the current row set's sense
    and bound; a kind the program cannot express answers None.
    """

    def __init__(self, w: cp.Expression) -> None:
        self.w = w
        self.upper = True
        self.bound = np.zeros(0)

    def affine(self, block: AffineBlock) -> list[cp.Constraint] | None:
        value = block.A @ self.w + block.c
        return [value <= self.bound] if self.upper else [value >= self.bound]

    def abs_sum(self, block: AbsSumBlock) -> list[cp.Constraint] | None:
        if not self.upper:  # not convex
            return None
        terms = cp.abs(block.A @ self.w + block.c)
        summed = terms if block.G is None else block.G @ terms
        k_terms = np.zeros(block.rows) if block.k is None else block.k
        return [summed + k_terms <= self.bound]

    def unsupported(self, block: Block) -> list[cp.Constraint] | None:
        return None

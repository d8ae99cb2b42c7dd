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

The program goes to HiGHS through its own API (`solvers.highs_direct`), built as matrices:
the lot counts (from each trade's lowest count allowed) are the first columns, each
absolute value an auxiliary column `s >= |x|` held by two rows. It is the program the
search used to state in cvxpy (whose canonicalization cost about as much as the solve),
with the options cvxpy left to HiGHS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.layout import Layout
from engine.deadline import NO_DEADLINE, Deadline
from engine.tolerances import LOT_UNITS_SNAP, MIP_FEASIBILITY
from models.typing import BoolArray, FloatArray, IntArray
from solvers.highs_direct import solve_highs

__all__ = [
    "MIP_ABS_GAP",
    "MIP_REL_GAP",
    "NODE_LIMIT",
    "OBJECTIVE_SCALE",
    "TIME_LIMIT_S",
    "integer_rounding",
]

NODE_LIMIT = 1_000
"""Branch-and-bound nodes of one integer solve. The cap that normally binds: it is counted,
not timed, so the same request gets the same answer on a busy machine as on an idle one
(every search in the engine tests closes at the root node)."""

TIME_LIMIT_S = 2.0
"""Wall-clock safety net of one integer solve; the search is a last resort and must stay
bounded even when single nodes are slow."""

MIP_REL_GAP = 1e-4
MIP_ABS_GAP = 1e-6
"""The gaps at which HiGHS calls the search's program solved: its defaults, which the
search had when it went through cvxpy (the objective is a distance in squared weights,
~1e-5, so the absolute gap often decides)."""

DUAL_FEASIBILITY = 1e-7
"""HiGHS's default dual feasibility tolerance, as the search had it through cvxpy (on the
objective scaled by `OBJECTIVE_SCALE`)."""

OBJECTIVE_SCALE = 1 / MIP_ABS_GAP
"""The objective goes to HiGHS in units of the absolute gap (its absolute gap then 1.0).

In squared weights one lot moves the objective by 1e-13 to 1e-5, often below HiGHS's
absolute tolerances (the dual one, `DUAL_FEASIBILITY`, is 1e-7), and its presolve's
reductions that argue from the costs (dominated columns, dual fixing, probing) removed the
optimum on drawn cases: the root node closed 3e-5 above it and answered 'optimal'. Scaled,
those tolerances are 1e-13 in squared weights. Factors from 1e4 to 1e6 all found the
optimum on the draws where the unscaled objective missed it (docs/performance-notes.md).
"""


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
    fixed = t.copy()
    # The columns count lots above each box's low corner, not from zero: `count - low`, in
    # [0, high - low], and `w_fixed` below is the weights at that corner. Counted from zero,
    # a column could sit at 9e4 lots of 4e-7 each, a row's activity was a sum of such terms
    # (~0.05) cancelling to a slack of ~1e-7, and the objective carried an offset (~1e-2)
    # far larger than the distances it ranks (~1e-5): HiGHS answered 'optimal' 2e-5 above
    # the optimum on a found case (its root node closed on its first incumbent), and its
    # relative gap was measured against that offset. From the low corner the activities
    # are the lot moves themselves and the objective holds only what they change.
    fixed[free] = low * lots[free]
    # Post-trade weights are affine in the lot counts: w = w_fixed + S count, S the lot
    # weights of the free names (sparse: a projection may trade every name, and a dense
    # n x (traded) matrix would be the n^2 term a request's memory must not have). Each
    # row is built as its constant at w_fixed plus its free columns times the counts.
    scale = lots[free] * snap.prices[free] / snap.nav
    w_fixed = snap.weights_from_trades(fixed)
    program = _Program(np.zeros(len(free)), high - low)
    # Distance to the proposal, linearized around the continuous optimum: the quadratic
    # term left out is at most one lot's weight squared per trade. Only the free names'
    # weights move: `w - w_star` is `scale (count + low - units)` there, constant elsewhere.
    # Its absolute values come first, then the rows: the order the program had in cvxpy,
    # which HiGHS's path (and so, among near-optimal points, its answer) depends on.
    w_star = snap.weights_from_trades(t)
    gradient = 2 * (w_star - snap.w_hat)
    moved = program.absolute(sp.diags(scale, format="csr"), -(w_star[free] - w_fixed[free]))
    objective_rows = program.rows
    forms = _CountForms(w_fixed, free, scale, program)
    for k, bound in zip(strict, bounds, strict=True):
        deadline.check("the integer lot search's set-up")
        rowset = layout.rowsets[k]
        forms.upper, forms.bound = rowset.sense == "le", np.asarray(bound, dtype=float)
        rowset.block.integer(forms)
    if forms.broken or program.rows == objective_rows:
        return None
    cost = np.zeros(program.columns)
    cost[: len(free)] = OBJECTIVE_SCALE * gradient[free] * scale
    cost[moved] = OBJECTIVE_SCALE * 2 * scale
    deadline.check("the integer lot search's solve")
    limit = min(time_limit, deadline.remaining())
    matrix, row_lower, row_upper = program.matrix()
    integer = np.zeros(program.columns, dtype=bool)
    integer[: len(free)] = True
    col_lower, col_upper = program.bounds()
    answer = solve_highs(
        c=cost,
        A=matrix,
        row_lower=row_lower,
        row_upper=row_upper,
        col_lower=col_lower,
        col_upper=col_upper,
        integer=integer,
        time_limit=limit,
        mip_rel_gap=MIP_REL_GAP,
        mip_abs_gap=MIP_ABS_GAP * OBJECTIVE_SCALE,
        node_limit=NODE_LIMIT,
        # Far below the checker's 1e-9: a point HiGHS accepts must also pass the exact
        # check (one lot moves a weight by about 1e-5).
        feasibility=MIP_FEASIBILITY,
        dual_feasibility=DUAL_FEASIBILITY,
    )
    if answer.status != "optimal" or answer.x is None:
        return None
    out = fixed.copy()
    out[free] = (low + np.round(answer.x[: len(free)])) * lots[free]
    return out


class _Program:
    """The integer program's rows.

    Its columns are the lot counts first, then auxiliary columns, each added with the rows
    that define it.
    """

    def __init__(self, low: FloatArray, high: FloatArray) -> None:
        self.counts = len(low)
        self.columns = self.counts
        self.rows = 0
        self._blocks: list[tuple[sp.coo_matrix, FloatArray, FloatArray]] = []
        self.lower, self.upper = [np.asarray(low, dtype=float)], [np.asarray(high, dtype=float)]

    def add(self, matrix: sp.spmatrix, lower: FloatArray, upper: FloatArray) -> None:
        """Rows `lower <= matrix x <= upper` over the columns so far."""
        coo = sp.coo_matrix(matrix)
        self._blocks.append((coo, np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)))
        self.rows += coo.shape[0]

    def absolute(self, over_counts: sp.spmatrix, constant: FloatArray) -> IntArray:
        """New columns `s >= |over_counts count + constant|` (two rows each); their indices.

        Each is bounded by the range of `|over_counts count + constant|` over the counts'
        box, as cvxpy bounded them: without, HiGHS's branch and bound wanders on these
        tiny weights (a solve that closes at its root node with them took its whole node
        budget and left rows 1e-6 past their bound).
        """
        terms = over_counts.shape[0]
        first = self.columns
        self.columns += terms
        csr = sp.csr_matrix(over_counts)
        positive, negative = csr.maximum(0.0), csr.minimum(0.0)
        low, high = self.lower[0], self.upper[0]
        least = np.asarray(positive @ low + negative @ high, dtype=float).ravel() + constant
        most = np.asarray(positive @ high + negative @ low, dtype=float).ravel() + constant
        self.lower.append(np.where(least >= 0, least, np.where(most <= 0, -most, 0.0)))
        self.upper.append(np.maximum(-least, most))
        new = sp.identity(terms, format="csr")
        padding = sp.csr_matrix((terms, first - self.counts))
        for sign in (1.0, -1.0):
            # sign (A count + c) - s <= 0
            row = sp.hstack([sign * over_counts, padding, -new], format="csr")
            self.add(row, np.full(terms, -np.inf), -sign * np.asarray(constant, dtype=float))
        return np.arange(first, first + terms)

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        """Every column's lower and upper bound."""
        return np.concatenate(self.lower), np.concatenate(self.upper)

    def matrix(self) -> tuple[sp.csc_matrix, FloatArray, FloatArray]:
        """Every row over every column, with the rows' lower and upper bounds."""
        rows, columns, values = [], [], []
        offset = 0
        for coo, _, _ in self._blocks:
            rows.append(coo.row + offset)
            columns.append(coo.col)
            values.append(coo.data)
            offset += coo.shape[0]
        matrix = sp.csc_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
            shape=(self.rows, self.columns),
        )
        lower = np.concatenate([block[1] for block in self._blocks])
        upper = np.concatenate([block[2] for block in self._blocks])
        return matrix, lower, upper


class _CountForms:
    """Each block kind's rows over the lot counts (`engine.compile.representations.IntegerForms`).

    Post-trade weights are `w_fixed + S count` with `S` the lot weights of the `free`
    names; a matrix `M` maps them to `M w_fixed` plus `M[:, free] S` times the counts, and
    only the rows (or terms) with an entry in a free column go into `program`. A row no
    free trade moves is a constant: one past its bound by more than `MIP_FEASIBILITY`
    makes the program infeasible (`broken`), as it would be for the solver. Holds the
    current row set's sense and bound; answers True for a kind it wrote (rows or not),
    None for a kind the program cannot express.
    """

    def __init__(
        self, w_fixed: FloatArray, free: IntArray, scale: FloatArray, program: _Program
    ) -> None:
        self.w_fixed = w_fixed
        self.free = free
        self.scale = scale
        self.program = program
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

    def affine(self, block: AffineBlock) -> bool | None:
        constant, varies, moving = self._split(block.A, block.c)
        self._hold(constant[~varies], self.bound[~varies])
        if varies.any():
            # moving count + constant <= bound, or -moving count <= constant - bound
            sign = 1.0 if self.upper else -1.0
            limit = sign * (self.bound[varies] - constant[varies])
            self.program.add(sign * moving[varies], np.full(len(limit), -np.inf), limit)
        return True

    def abs_sum(self, block: AbsSumBlock) -> bool | None:
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
        if rows.any():
            # held |moving count + constant| + rest <= bound, over new columns for the terms
            terms = self.program.absolute(moving[varies], constant[varies])
            over_terms = sp.csr_matrix(held[rows])
            row = sp.csr_matrix(
                (over_terms.data, terms[over_terms.indices], over_terms.indptr),
                shape=(over_terms.shape[0], self.program.columns),
            )
            limit = self.bound[rows] - rest[rows]
            self.program.add(row, np.full(len(limit), -np.inf), limit)
        return True

    def unsupported(self, block: Block) -> bool | None:
        return None

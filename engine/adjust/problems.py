"""Compile stage, cvxpy half: the adjustment problems, built once per structure and cached.

Three problem families share the row constraints of the strict policies:

- ``scale_back``: variables `u` (weight change per traded symbol) with `u_i` between 0 and
  the proposed change `d_i` (that is `u = alpha * d`, `alpha` in [0, 1]); minimize
  `sum (u - d)^2`.
- ``project``: variables `x = w - w0` over V; minimize `sum (x - (w_hat - w0))^2`.
- ``elastic``: variables `x` over V and a slack per row; minimize the total slack (used to
  find which policies conflict).

Every request-dependent number is a Parameter, so a problem with a structure seen before
is re-solved with new values and the solver is warm-started from its previous solution.

The scale_back problem holds only the rows the traded names move (`engine.adjust.traded_rows`);
`row_duals` and `filled_bounds` give its rows back in the row sets' own indexing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.adjust.traded_rows import AllTraded, TradedView, row_view
from engine.compile.blocks import Params
from engine.compile.layout import Layout
from engine.lru import LruCache
from engine.tolerances import TOLERANCE
from models.typing import FloatArray
from solvers import ChainResult, SolveOutcome, SolveStatus

__all__ = [
    "OBJECTIVE_SCALE",
    "CompiledProblem",
    "ProblemCache",
    "Space",
    "fixed_rows_infeasible",
]

Space = Literal["scale_back", "project", "elastic"]

OBJECTIVE_SCALE = 1e4
"""Distances are sums of squared weight changes (often 1e-6 .. 1e-2); scaling them keeps the
solvers' absolute tolerances meaningful. Duals are divided by it again when reported."""


@dataclass
class CompiledProblem:
    """A cvxpy problem and handles on its variables, parameters and row constraints.

    `bounds` and `row_constraints` hold, per row set, the rows of `views[i].kept` (all rows
    outside scale_back), or None when the row set has no row in the problem.
    """

    space: Space
    problem: cp.Problem
    variable: cp.Variable
    target: cp.Parameter | None
    lower: cp.Parameter | None
    upper: cp.Parameter | None
    block_params: list[Params]
    bounds: list[cp.Parameter | None]
    row_constraints: list[cp.Constraint | None]
    views: list[TradedView[Any]]
    slacks: list[cp.Variable] = field(default_factory=list)
    traded: tuple[int, ...] = ()
    needs_socp: bool = False
    filled_bounds: list[FloatArray] = field(default_factory=list)
    """The full-length bounds of the last `fill`, per row set."""
    separable_memo: dict[Any, Any] = field(default_factory=dict)
    """What `engine.adjust.separable.qp` keeps of this structure between requests."""
    fixed_excess: float = 0.0
    """The largest excess over its bound of a row left out of the problem at the last `fill`
    (such a row keeps its pre-trade value whatever the solution; > 0 only when curing)."""

    def fill(
        self,
        layout: Layout,
        indices: Sequence[int],
        bounds: Sequence[FloatArray],
        *,
        rows: bool = True,
    ) -> None:
        """Set every Parameter from the layout's row sets and the chosen row bounds.

        With `rows=False` the rows' Parameters are left for `fill_rows` (a solver that reads
        the layout itself needs only the bounds and the target).
        """
        snap = layout.snap
        self.filled_bounds = [np.asarray(bound, dtype=float) for bound in bounds]
        self.fixed_excess = 0.0
        if rows:
            self.fill_rows(layout, indices)
        for k, bound, view in zip(indices, self.filled_bounds, self.views, strict=True):
            rowset = layout.rowsets[k]
            if len(view.dropped):
                fixed = layout.pre_values[k][view.dropped] - bound[view.dropped]
                worst = float((fixed if rowset.sense == "le" else -fixed).max())
                self.fixed_excess = max(self.fixed_excess, worst)
        change = snap.w_hat - snap.w0
        if self.space == "scale_back":
            d = change[list(self.traded)]
            assert self.target is not None and self.lower is not None and self.upper is not None
            self.target.value = d
            self.lower.value = np.minimum(d, 0.0)
            self.upper.value = np.maximum(d, 0.0)
        elif self.space == "project":
            assert self.target is not None
            self.target.value = change

    def fill_rows(self, layout: Layout, indices: Sequence[int]) -> None:
        """Set the rows' Parameters and bounds (from the last `fill`'s bounds)."""
        w0 = layout.snap.w0
        for params, k, bound, bound_param, view in zip(
            self.block_params, indices, self.filled_bounds, self.bounds, self.views, strict=True
        ):
            if bound_param is not None:
                view.fill(layout.rowsets[k].block, params, w0)
                bound_param.value = bound if view.kept is None else bound[view.kept]

    def row_duals(self, position: int, rows: int) -> FloatArray | None:
        """Duals of the `position`-th row set over all its `rows` (0 on rows left out)."""
        row, kept = self.row_constraints[position], self.views[position].kept
        if row is None:
            return np.zeros(rows)
        if row.dual_value is None:
            return None
        duals = np.atleast_1d(np.asarray(row.dual_value, dtype=float))
        if kept is None:
            return duals
        out = np.zeros(rows)
        out[kept] = duals
        return out

    def delta(self, n: int) -> FloatArray:
        """The solution as a weight change over V."""
        value = np.asarray(self.variable.value, dtype=float)
        if self.space != "scale_back":
            return value
        assert self.lower is not None and self.upper is not None
        # Solver noise must not leave [0, d]: scale_back never grows or flips a trade.
        value = np.clip(value, self.lower.value, self.upper.value)
        out = np.zeros(n)
        out[list(self.traded)] = value
        return out


def _build(space: Space, layout: Layout, indices: Sequence[int]) -> CompiledProblem:
    n = layout.snap.n
    traded = layout.snap.traded if space == "scale_back" else ()
    target = lower = upper = picks = None
    constraints: list[cp.Constraint] = []
    if space == "scale_back":
        m = len(traded)
        variable = cp.Variable(m, name="u")
        target = cp.Parameter(m, name="d")
        lower, upper = cp.Parameter(m, name="lower"), cp.Parameter(m, name="upper")
        picks = sp.csr_matrix((np.ones(m), (list(traded), np.arange(m))), shape=(n, m))
        objective = OBJECTIVE_SCALE * cp.sum_squares(variable - target)
        constraints += [variable >= lower, variable <= upper]
    else:
        variable = cp.Variable(n, name="x")
        if space == "project":
            target = cp.Parameter(n, name="dhat")
            objective = OBJECTIVE_SCALE * cp.sum_squares(variable - target)

    block_params: list[Params] = []
    bounds: list[cp.Parameter | None] = []
    rows: list[cp.Constraint | None] = []
    views: list[TradedView[Any]] = []
    slacks: list[cp.Variable] = []
    for k in indices:
        rowset = layout.rowsets[k]
        view = (
            AllTraded(rowset.block, None)
            if picks is None
            else row_view(rowset.block, traded, picks)
        )
        views.append(view)
        if view.kept is not None and not len(view.kept):  # no row moves with the traded names
            block_params.append({})
            bounds.append(None)
            rows.append(None)
            continue
        params = view.declare(rowset.block)
        block_params.append(params)
        expr = view.expression(rowset.block, variable, params)
        bound = cp.Parameter(view.size, name=f"bound{k}")
        if space == "elastic":
            slack = cp.Variable(rowset.rows, nonneg=True, name=f"slack{k}")
            slacks.append(slack)
            row = expr - slack <= bound if rowset.sense == "le" else expr + slack >= bound
        else:
            row = expr <= bound if rowset.sense == "le" else expr >= bound
        bounds.append(bound)
        rows.append(row)
    if space == "elastic":
        objective = cp.sum(cp.hstack([cp.sum(s) for s in slacks])) if slacks else cp.Constant(0)
    problem = cp.Problem(cp.Minimize(objective), constraints + [r for r in rows if r is not None])
    if not problem.is_dcp(dpp=True):
        raise RuntimeError(f"{space} problem is not DPP; a constraint kind is mis-specified")
    needs_socp = any(layout.rowsets[k].block.needs_cone for k in indices)
    return CompiledProblem(
        space,
        problem,
        variable,
        target,
        lower,
        upper,
        block_params,
        bounds,
        rows,
        views,
        slacks,
        traded,
        needs_socp,
    )


def fixed_rows_infeasible(compiled: CompiledProblem) -> ChainResult | None:
    """An infeasible verdict when a row left out of the problem is beyond its bound.

    Such a row (no traded name moves it) keeps its pre-trade value whatever the solution, so
    no solution passes the exact check; this is the infeasibility a solver would find on the
    full problem, said without solving.
    """
    if compiled.fixed_excess <= TOLERANCE:
        return None
    outcome = SolveOutcome(
        "rows no trade moves",
        SolveStatus.INFEASIBLE,
        0.0,
        message=f"a row no traded symbol moves is {compiled.fixed_excess:.3g} beyond its bound",
    )
    return ChainResult(SolveStatus.INFEASIBLE, None, [outcome])


class ProblemCache(LruCache[CompiledProblem]):
    """Compiled problems by (space, structure), least recently used first out."""

    def __init__(self, max_entries: int = 64) -> None:
        super().__init__(max_entries)

    def get_problem(self, space: Space, layout: Layout, indices: Sequence[int]) -> CompiledProblem:
        """The compiled problem for this structure, building it on a miss."""
        key = (
            space,
            layout.snap.n,
            layout.snap.traded if space == "scale_back" else (),
            layout.structure(indices),
        )
        return self.get(key, lambda: _build(space, layout, indices))

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
class CvxpyForm:
    """The cvxpy problem of a structure, and handles on its variables, parameters and rows.

    `bounds` and `row_constraints` hold, per row set, the rows of `views[i].kept` (all rows
    outside scale_back), or None when the row set has no row in the problem.
    """

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


@dataclass
class CompiledProblem:
    """One adjustment problem's structure, this request's numbers and its answer.

    The cvxpy form (`form`) is built on first use only: the separable solver and the
    direct conic solves (`engine.adjust.conic`) read the layout and the numbers here, so a
    request they answer never compiles a cvxpy problem (scale_back's structure changes
    with every traded set). The answer (`solution`, `duals`) is kept as arrays, whichever
    solver gave it; `load_cvxpy_solution` copies the cvxpy form's.
    """

    space: Space
    layout: Layout
    indices: tuple[int, ...]
    traded: tuple[int, ...] = ()
    needs_socp: bool = False
    target: FloatArray | None = None
    """The proposed change over the problem's columns (None for the elastic problem)."""
    lower: FloatArray | None = None
    upper: FloatArray | None = None
    filled_bounds: list[FloatArray] = field(default_factory=list)
    """The full-length bounds of the last `fill`, per row set."""
    separable_memo: dict[Any, Any] = field(default_factory=dict)
    """What `engine.adjust.separable.qp` keeps of this structure between requests."""
    fixed_excess: float = 0.0
    """The largest excess over its bound of a row no traded name moves at the last `fill`
    (such a row keeps its pre-trade value whatever the solution; > 0 only when curing)."""
    solution: FloatArray | None = None
    """The answer over the problem's columns (None: no solver answered since `fill`)."""
    duals: list[FloatArray | None] = field(default_factory=list)
    """Per row set, the duals over all its rows (None: unknown)."""
    _form: CvxpyForm | None = field(default=None, repr=False)

    @property
    def form(self) -> CvxpyForm:
        """The cvxpy form, built from the last filled layout on first use."""
        if self._form is None:
            self._form = _cvxpy_form(self.space, self.layout, self.indices)
        return self._form

    @property
    def problem(self) -> cp.Problem:
        """The cvxpy problem (built on first use)."""
        return self.form.problem

    @property
    def variable(self) -> cp.Variable:
        """The cvxpy problem's variable (built on first use)."""
        return self.form.variable

    @property
    def slacks(self) -> list[cp.Variable]:
        """The elastic problem's slacks, per row set."""
        return self.form.slacks

    @property
    def row_constraints(self) -> list[cp.Constraint | None]:
        """The cvxpy row constraints, per row set (None: no row in the problem)."""
        return self.form.row_constraints

    @property
    def views(self) -> list[TradedView[Any]]:
        """The rows of each row set as the cvxpy problem holds them."""
        return self.form.views

    def fill(
        self,
        layout: Layout,
        indices: Sequence[int],
        bounds: Sequence[FloatArray],
        *,
        rows: bool = True,
    ) -> None:
        """Take this request's numbers (bounds, target, box) and forget the last answer.

        With `rows=True` the cvxpy form's Parameters are set too (`fill_rows`); a solver
        that reads the layout itself needs only the bounds and the target.
        """
        snap = layout.snap
        # A problem of the same structure may come from another layout (or other row sets
        # of it): the cvxpy form, when built, is built from the last filled ones.
        self.layout, self.indices = layout, tuple(indices)
        self.filled_bounds = [np.asarray(bound, dtype=float) for bound in bounds]
        self.solution = None
        self.duals = [None] * len(self.filled_bounds)
        change = snap.w_hat - snap.w0
        self.fixed_excess = 0.0
        if self.space == "scale_back":
            d = change[list(self.traded)]
            self.target, self.lower, self.upper = d, np.minimum(d, 0.0), np.maximum(d, 0.0)
            self.fixed_excess = _fixed_excess(layout, indices, self.filled_bounds, self.traded)
        elif self.space == "project":
            self.target = change
        if rows:
            self.fill_rows(layout, indices)

    def fill_rows(self, layout: Layout, indices: Sequence[int]) -> None:
        """Set the cvxpy form's Parameters (from the last `fill`'s numbers)."""
        form = self.form
        w0 = layout.snap.w0
        for params, k, bound, bound_param, view in zip(
            form.block_params, indices, self.filled_bounds, form.bounds, form.views, strict=True
        ):
            if bound_param is not None:
                view.fill(layout.rowsets[k].block, params, w0)
                bound_param.value = bound if view.kept is None else bound[view.kept]
        for param, value in (
            (form.target, self.target),
            (form.lower, self.lower),
            (form.upper, self.upper),
        ):
            if param is not None:
                param.value = value

    def set_solution(self, solution: FloatArray, duals: Sequence[FloatArray | None]) -> None:
        """Keep an answer given outside the cvxpy form (duals over all rows of each set)."""
        self.solution = np.asarray(solution, dtype=float)
        self.duals = list(duals)

    def load_cvxpy_solution(self) -> None:
        """Take the cvxpy form's answer (variable and row duals) as the answer."""
        form = self.form
        value = form.variable.value
        self.solution = None if value is None else np.array(value, dtype=float)
        self.duals = [
            _expanded(row, view, self.layout.rowsets[k].rows)
            for row, view, k in zip(form.row_constraints, form.views, self.indices, strict=True)
        ]

    def row_duals(self, position: int) -> FloatArray | None:
        """Duals of the `position`-th row set over all its rows (0 on rows left out)."""
        return self.duals[position] if position < len(self.duals) else None

    def delta(self, n: int) -> FloatArray:
        """The solution as a weight change over V."""
        assert self.solution is not None
        value = self.solution
        if self.space != "scale_back":
            return value
        assert self.lower is not None and self.upper is not None
        # Solver noise must not leave [0, d]: scale_back never grows or flips a trade.
        value = np.clip(value, self.lower, self.upper)
        out = np.zeros(n)
        out[list(self.traded)] = value
        return out


def _expanded(row: cp.Constraint | None, view: TradedView[Any], rows: int) -> FloatArray | None:
    """A cvxpy row constraint's duals over all the block's `rows` (0 on rows left out)."""
    if row is None:
        return np.zeros(rows)
    if row.dual_value is None:
        return None
    duals = np.atleast_1d(np.asarray(row.dual_value, dtype=float))
    if view.kept is None:
        return duals
    out = np.zeros(rows)
    out[view.kept] = duals
    return out


def _fixed_excess(
    layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray], traded: tuple[int, ...]
) -> float:
    """The largest excess over its bound of a row no traded name moves (0 if none).

    Only rows beyond their bound before the trade are looked at (none unless passive
    breaches are cured), and of those the ones their block cannot move
    (`Block.perturbation_bound` zero over the traded names).
    """
    worst = 0.0
    movable: FloatArray | None = None
    for k, bound in zip(indices, bounds, strict=True):
        rowset = layout.rowsets[k]
        fixed = layout.pre_values[k] - bound
        excess = fixed if rowset.sense == "le" else -fixed
        if not (excess > 0).any():
            continue
        if movable is None:
            movable = np.zeros(layout.snap.n)
            movable[list(traded)] = 1.0
        still = (rowset.block.perturbation_bound(movable) <= 0) & (excess > 0)
        if still.any():
            worst = max(worst, float(excess[still].max()))
    return worst


def _cvxpy_form(space: Space, layout: Layout, indices: Sequence[int]) -> CvxpyForm:
    """The cvxpy problem of a structure (see the module's docstring)."""
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
    return CvxpyForm(
        problem, variable, target, lower, upper, block_params, bounds, rows, views, slacks
    )


def _build(space: Space, layout: Layout, indices: Sequence[int]) -> CompiledProblem:
    """A problem of this structure (its cvxpy form waits for its first use)."""
    return CompiledProblem(
        space,
        layout,
        tuple(indices),
        traded=layout.snap.traded if space == "scale_back" else (),
        needs_socp=any(layout.rowsets[k].block.needs_cone for k in indices),
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

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.blocks import Params
from engine.layout import Layout
from engine.lru import LruCache
from models.typing import FloatArray

__all__ = ["OBJECTIVE_SCALE", "CompiledProblem", "ProblemCache", "Space"]

Space = Literal["scale_back", "project", "elastic"]

OBJECTIVE_SCALE = 1e4
"""Distances are sums of squared weight changes (often 1e-6 .. 1e-2); scaling them keeps the
solvers' absolute tolerances meaningful. Duals are divided by it again when reported."""


@dataclass
class CompiledProblem:
    """A cvxpy problem and handles on its variables, parameters and row constraints."""

    space: Space
    problem: cp.Problem
    variable: cp.Variable
    target: cp.Parameter | None
    lower: cp.Parameter | None
    upper: cp.Parameter | None
    block_params: list[Params]
    bounds: list[cp.Parameter]
    row_constraints: list[cp.Constraint]
    slacks: list[cp.Variable] = field(default_factory=list)
    traded: tuple[int, ...] = ()
    needs_socp: bool = False

    def fill(self, layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]) -> None:
        """Set every Parameter from the layout's row sets and the chosen row bounds."""
        snap = layout.snap
        for params, k, bound, bound_param in zip(
            self.block_params, indices, bounds, self.bounds, strict=True
        ):
            layout.rowsets[k].block.fill(params, snap.w0)
            bound_param.value = np.asarray(bound, dtype=float)
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
    target = lower = upper = None
    constraints: list[cp.Constraint] = []
    if space == "scale_back":
        m = len(traded)
        variable = cp.Variable(m, name="u")
        target = cp.Parameter(m, name="d")
        lower, upper = cp.Parameter(m, name="lower"), cp.Parameter(m, name="upper")
        picks = sp.csr_matrix((np.ones(m), (list(traded), np.arange(m))), shape=(n, m))
        delta: Any = picks @ variable
        objective = OBJECTIVE_SCALE * cp.sum_squares(variable - target)
        constraints += [variable >= lower, variable <= upper]
    else:
        variable = cp.Variable(n, name="x")
        delta = variable
        if space == "project":
            target = cp.Parameter(n, name="dhat")
            objective = OBJECTIVE_SCALE * cp.sum_squares(variable - target)

    block_params, bounds, rows, slacks = [], [], [], []
    for k in indices:
        rowset = layout.rowsets[k]
        params = rowset.block.declare()
        expr = rowset.block.expression(delta, params)
        bound = cp.Parameter(rowset.rows, name=f"bound{k}")
        if space == "elastic":
            slack = cp.Variable(rowset.rows, nonneg=True, name=f"slack{k}")
            slacks.append(slack)
            row = expr - slack <= bound if rowset.sense == "le" else expr + slack >= bound
        else:
            row = expr <= bound if rowset.sense == "le" else expr >= bound
        block_params.append(params)
        bounds.append(bound)
        rows.append(row)
    if space == "elastic":
        objective = cp.sum(cp.hstack([cp.sum(s) for s in slacks])) if slacks else cp.Constant(0)
    problem = cp.Problem(cp.Minimize(objective), constraints + rows)
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
        slacks,
        traded,
        needs_socp,
    )


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

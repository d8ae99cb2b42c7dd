r"""The capacity problem in cvxpy: how far the base can move along one symbol's direction.

.. math::

    \max_{s, x} \; s \quad \text{s.t.} \quad x = x_b + s \, e, \quad 0 \le s \le \bar s,
    \quad \text{every strict row at } w_0 + x \text{ within its bound}

`x` is the weight change from `w0` over V, `x_b` the base's change (0 for the current
portfolio, the decision's change otherwise), `e` plus or minus the symbol's unit vector and
`s` the weight moved. The row bounds are the adjuster's (`engine.adjust.bounds.solve_bounds`):
the limit, or the pre-trade value for a row already in breach (no worse than pre-trade).
`e`, `x_b` and the cap are Parameters, so one compiled problem per layout structure serves
every symbol and both directions: only `e` changes between solves.

The solver's `s` is an estimate; `engine.capacity.analyzer` turns it into an exact lot count with
the checker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from engine.compile.blocks import Params
from engine.compile.layout import Layout
from engine.lru import LruCache
from models.typing import FloatArray
from solvers import SolverChain
from solvers.chain import TimeLeft

__all__ = ["CapacityProblem", "CapacityProblemCache"]


@dataclass
class CapacityProblem:
    """The compiled capacity LP (an SOCP when a risk norm is among the rows)."""

    problem: cp.Problem
    step: cp.Variable
    direction: cp.Parameter
    base: cp.Parameter
    cap: cp.Parameter
    block_params: list[Params]
    bounds: list[cp.Parameter]
    needs_socp: bool

    def fill(self, layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]) -> None:
        """Set the rows' Parameters, their bounds and the base change from the layout."""
        snap = layout.snap
        for params, k, bound, bound_param in zip(
            self.block_params, indices, bounds, self.bounds, strict=True
        ):
            layout.rowsets[k].block.fill(params, snap.w0)
            bound_param.value = np.asarray(bound, dtype=float)
        self.base.value = snap.w_hat - snap.w0

    def largest_step(
        self,
        chain: SolverChain,
        *,
        symbol: int,
        sign: int,
        cap: float,
        time_left: TimeLeft | None = None,
    ) -> tuple[float, str] | None:
        """The solver's largest weight step along `sign` x symbol, or None if it failed.

        `time_left` bounds every solver of the chain (the request's deadline).
        """
        direction = np.zeros(self.direction.shape)
        direction[symbol] = float(sign)
        self.direction.value = direction
        self.cap.value = max(cap, 0.0)
        result = chain.solve(self.problem, needs_socp=self.needs_socp, time_left=time_left)
        if not result.optimal or self.step.value is None or result.solver is None:
            return None
        return float(np.clip(float(self.step.value), 0.0, max(cap, 0.0))), result.solver


def _build(layout: Layout, indices: Sequence[int]) -> CapacityProblem:
    n = layout.snap.n
    x = cp.Variable(n, name="x")
    step = cp.Variable(name="s")
    direction = cp.Parameter(n, name="e")
    base = cp.Parameter(n, name="x_base")
    cap = cp.Parameter(nonneg=True, name="cap")
    constraints: list[cp.Constraint] = [x == base + direction * step, step >= 0, step <= cap]
    block_params, bounds = [], []
    for k in indices:
        rowset = layout.rowsets[k]
        params = rowset.block.declare()
        expr = rowset.block.expression(x, params)
        bound = cp.Parameter(rowset.rows, name=f"bound{k}")
        constraints.append(expr <= bound if rowset.sense == "le" else expr >= bound)
        block_params.append(params)
        bounds.append(bound)
    problem = cp.Problem(cp.Maximize(step), constraints)
    if not problem.is_dcp(dpp=True):
        raise RuntimeError("capacity problem is not DPP; a constraint kind is mis-specified")
    needs_socp = any(layout.rowsets[k].block.needs_cone for k in indices)
    return CapacityProblem(problem, step, direction, base, cap, block_params, bounds, needs_socp)


class CapacityProblemCache(LruCache[CapacityProblem]):
    """Compiled capacity problems by layout structure, least recently used first out."""

    def __init__(self, max_entries: int = 16) -> None:
        super().__init__(max_entries)

    def get_problem(self, layout: Layout, indices: Sequence[int]) -> CapacityProblem:
        """The compiled problem for this structure, building it on a miss."""
        key = (layout.snap.n, layout.structure(indices))
        return self.get(key, lambda: _build(layout, indices))

r"""An exact solver for adjustment QPs whose rows are affine or sums of one-name absolute terms.

`project` and `scale_back` both minimize `1/2 ||z - d||^2` over a weight change `z` (all of
V, or the traded names) subject to the strict rows. When every row is affine (`A w + c`) or
sums absolute terms of one name each (`G |a_j w_i + c_j| + k`: turnover, gross, no-trade,
trade limits), the Lagrangian separates by name: given multipliers `y >= 0` of the rows that
couple names, each `z_i` minimizes a 1-D convex piecewise quadratic over an interval, which
has a closed form. Rows of one name only are folded into that interval:

.. math::

    \min_z \tfrac12 \|z - d\|^2 \quad \text{s.t.} \quad l \le z \le u, \quad
    M z \le b_M, \quad G \, |a \circ z_\nu + e| \le b_G

(term `j` is `a_j z_{nu_j} + e_j`, over the one name `nu_j`; `G >= 0`). With multipliers
`lambda, mu >= 0` the Lagrangian is a sum over names, each minimized in closed form:

.. math::

    z_i(\lambda, \mu) = \arg\min_{l_i \le z_i \le u_i} \tfrac12
    \big(z_i - d_i + (M^T \lambda)_i\big)^2
    + \sum_{j : \nu_j = i} |a_j| \, (G^T \mu)_j \, |z_i + e_j / a_j|

and the dual :math:`q(\lambda, \mu) = L(z(\lambda, \mu), \lambda, \mu)` is maximized
over :math:`\lambda, \mu \ge 0`.

The dual is a concave piecewise quadratic in the coupling multipliers (sector and cash
rows, turnover, a gross limit per group); `engine.adjust.separable.dual` evaluates it and its
sparse generalized Jacobian. It is maximized by a projected semismooth Newton method with
an ε-active set (`engine.adjust.separable.newton`: Hessian `-J D J^T`, `D` the names strictly
inside their piece), which ends exactly once the active pieces are found, and takes a step
only when the dual rises. The answer is certified before it is returned: every row within
1e-12 of its bound (relative), complementary slackness, `z` the exact minimizer of the
Lagrangian.

Anything else (a block kind that opts out of `Block.separable`, a term over several names,
no convergence within the iteration cap, a row that looks infeasible) returns None: the
solver chain then solves the problem, and only the chain says a problem is infeasible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.adjust.separable.dual import Dual, normal_work
from engine.adjust.separable.fold import (
    Box,
    Coupling,
    IntArray,
    Unsupported,
    abs_shape,
    affine_shape,
    fold_abs_sum,
    fold_affine,
    memoized,
)
from engine.adjust.separable.newton import maximize
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.layout import Layout
from engine.tolerances import FLOAT_NOISE
from models.typing import FloatArray

__all__ = ["HANDOVER_WORK", "SeparableSolution", "solve_separable"]

HANDOVER_WORK = 1e8
"""Above this estimated work per Newton iteration the problem goes to the chain untried.

The work is `sum_i r_i^2` (`dual.normal_work`, `r_i` the coupling rows over name `i`): the
products that form the normal matrix `J D J^T` once per iteration, which dominate an
iteration (with its sparse factorization) once many rows cover the same names: exposure,
stress or cash rows over every name. A gross limit per group adds one row per name however
many groups there are: at n = 2,000 with 150-400 groups the work is ~3e4. Measured on the
shared 2-core machine with `python -m benchmarks.coupling --cases 1 --exposures K` (n =
2,000, K exposure rows over every name; docs/performance-notes.md, "Separable solver at
scale, 2026-12-03"), separable against chain: work 2.2e7 0.46 s / 6.9 s, 8.3e7 1.8 s /
9.2 s, 1.8e8 11.6 s / 9.7 s. The limit sits below the crossing, where the separable
solver is still several times faster.
"""


@dataclass
class SeparableSolution:
    """The optimal `z`, and per row set the multipliers of its rows (objective `1/2||z-d||^2`)."""

    z: FloatArray
    duals: list[FloatArray]
    iterations: int


def _box_duals(dual: Dual, y: FloatArray, z: FloatArray, box: Box, duals: list[FloatArray]) -> None:
    """Multipliers of the one-name rows that hold a name at an end of its interval."""
    lam, mu = y[: dual.m_aff], y[dual.m_aff :]
    pull = z - dual.d + dual.MT @ lam  # the Lagrangian's gradient, kinks at z aside
    give = np.zeros(len(z))  # how much of the pull the kinks at z can take
    if len(dual.names):
        weights = np.abs(dual.slopes) * (dual.GT @ mu)
        inner = dual.slopes * z[dual.names] + dual.offsets
        at = np.abs(inner) <= FLOAT_NOISE * np.maximum(1.0, np.abs(dual.offsets))
        np.add.at(pull, dual.names, np.where(at, 0.0, weights * np.sign(inner)))
        np.add.at(give, dual.names, np.where(at, weights, 0.0))
    for side, ends, direction in (("hi", box.hi, 1.0), ("lo", box.lo, -1.0)):
        positions, rows, scales = box.sources[side]
        held = np.flatnonzero((z == ends) & (positions >= 0))
        # At an upper end the row's multiplier times its slope balances what pulls z up.
        need = np.maximum(0.0, -direction * pull[held] - give[held]) / scales[held]
        for position in np.unique(positions[held]):
            mine = positions[held] == position
            np.maximum.at(duals[position], rows[held][mine], need[mine])


class _Folds:
    """One row set at a time folded into `box` and `coupling` (`Block.separable`).

    Implements `engine.compile.representations.SeparableForms`: True once folded, False
    for a block kind the solver does not take (the caller then returns None).
    """

    def __init__(
        self,
        memo: dict[Any, Any],
        columns: IntArray | None,
        w0: FloatArray,
        box: Box,
        coupling: Coupling,
    ) -> None:
        self.memo, self.columns, self.w0 = memo, columns, w0
        self.box, self.coupling = box, coupling
        self.position = 0
        self.sense = "le"
        self.bound = np.zeros(0)

    def affine(self, block: AffineBlock) -> bool:
        position, sense, cols = self.position, self.sense, self.columns
        # A matrix that is not structural changes between requests: not memoized.
        shape = (
            memoized(self.memo, (position, "affine", sense), affine_shape, block, sense, cols)
            if block.structural
            else affine_shape(block, sense, cols)
        )
        fold_affine(position, shape, block, sense, self.bound, self.w0, self.box, self.coupling)
        return True

    def abs_sum(self, block: AbsSumBlock) -> bool:
        key = (self.position, "abs", self.sense)
        shape = memoized(self.memo, key, abs_shape, block, self.sense, self.columns)
        fold_abs_sum(self.position, shape, block, self.bound, self.w0, self.box, self.coupling)
        return True

    def unsupported(self, block: Block) -> bool:
        return False


def solve_separable(
    layout: Layout,
    indices: Sequence[int],
    bounds: Sequence[FloatArray],
    d: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    columns: Sequence[int] | None,
    memo: dict[Any, Any] | None = None,
) -> SeparableSolution | None:
    """Minimize `1/2 ||z - d||^2`, `lower <= z <= upper`, subject to the row sets `indices`.

    `z` is the weight change of the names `columns` (all of V when None); row set
    `indices[p]` is held to `bounds[p]`. Returns None when the rows are not all affine or
    one-name absolute sums, or when no certified optimum is found. `memo` keeps what
    depends on the row sets' structure only, for the next call on the same structure (the
    compiled problem holds one).
    """
    w0 = layout.snap.w0
    cols = None if columns is None else np.asarray(columns, dtype=np.intp)
    box = Box(np.asarray(lower, dtype=float), np.asarray(upper, dtype=float))
    coupling = Coupling()
    memo = {} if memo is None else memo
    folds = _Folds(memo, cols, w0, box, coupling)
    try:
        for position, (k, bound) in enumerate(zip(indices, bounds, strict=True)):
            rowset = layout.rowsets[k]
            folds.position, folds.sense, folds.bound = position, rowset.sense, bound
            if not rowset.block.separable(folds):
                return None
    except Unsupported:
        return None
    if not box.meet() or normal_work(coupling, len(d)) > HANDOVER_WORK:
        return None
    dual = Dual(np.asarray(d, dtype=float), box, coupling)
    solved = maximize(dual)
    if solved is None:
        return None
    y, z, iterations = solved
    duals = [np.zeros(layout.rowsets[k].block.rows) for k in indices]
    offset = 0
    for position, rows in (*coupling.aff_rows, *coupling.abs_rows):
        duals[position][rows] = y[offset : offset + len(rows)]
        offset += len(rows)
    _box_duals(dual, y, z, box, duals)
    return SeparableSolution(z, duals, iterations)

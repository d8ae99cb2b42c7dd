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

The dual is a concave piecewise quadratic in the few coupling multipliers (sector and cash
rows, turnover, gross). It is maximized by a projected semismooth Newton method (Hessian
`-J D J^T`, `D` the names strictly inside their piece), which ends exactly once the active
pieces are found. The answer is certified before it is returned: every row within 1e-12 of
its bound (relative), complementary slackness, `z` the exact minimizer of the Lagrangian.

Anything else (a block kind that opts out of `Block.separable`, a term over several names,
no convergence within the iteration cap, a row that looks infeasible) returns None: the
solver chain then solves the problem, and only the chain says a problem is infeasible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.adjust.separable.fold import (
    FEASIBILITY,
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
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.layout import Layout
from engine.tolerances import FLOAT_NOISE
from models.typing import FloatArray

__all__ = ["SeparableSolution", "solve_separable"]

MAX_ITERATIONS = 60
LINE_SEARCH_STEPS = 60
_ARMIJO = 1e-4
_WEIGHT = 0.01
"""A typical weight change: the floor of the scale of the Newton regularization."""
_DENSE_ENTRIES = 20_000
"""Coupling matrices with at most this many entries (dense) are multiplied as dense arrays."""


@dataclass
class SeparableSolution:
    """The optimal `z`, and per row set the multipliers of its rows (objective `1/2||z-d||^2`)."""

    z: FloatArray
    duals: list[FloatArray]
    iterations: int


class _Dual:
    """The separable Lagrangian: `z(y)`, row values and the generalized Jacobian."""

    def __init__(self, d: FloatArray, box: Box, coupling: Coupling) -> None:
        n = len(d)
        self.d, self.lo, self.hi = d, box.lo, box.hi
        self.M = (
            sp.vstack(coupling.aff_matrices, format="csr")
            if coupling.aff_matrices
            else sp.csr_matrix((0, n))
        )
        self.G = (
            sp.block_diag(coupling.abs_sums, format="csr")
            if coupling.abs_sums
            else sp.csr_matrix((0, 0))
        )
        self.b = np.concatenate([np.zeros(0), *coupling.aff_bounds, *coupling.abs_bounds]).astype(
            float
        )
        self.m_aff = self.M.shape[0]
        self.row_terms = np.concatenate([np.diff(self.M.indptr), np.diff(self.G.indptr)]) + 1.0
        self.M_dense = self.M.toarray()
        self.G_dense = self.G.toarray()
        # The matrices are used a dozen times per Newton iteration. Small ones (scale_back's
        # ~20 traded names) are kept dense: numpy multiplies them in about a microsecond,
        # where scipy spends ~10 us per product dispatching.
        small = (self.M_dense.size + self.G_dense.size) <= _DENSE_ENTRIES
        M: Any = self.M_dense if small else self.M
        G: Any = self.G_dense if small else self.G
        self.M, self.G = M, G
        self.MT, self.GT = (M.T.copy(), G.T.copy()) if small else (M.T.tocsr(), G.T.tocsr())
        self.M_abs = abs(M)
        self.names = np.concatenate([np.zeros(0, dtype=np.intp), *coupling.term_names])
        self.slopes = np.concatenate([np.zeros(0), *coupling.term_slopes])
        self.offsets = np.concatenate([np.zeros(0), *coupling.term_offsets])
        terms = len(self.names)
        name_of_term = sp.csr_matrix(
            (np.ones(terms), (self.names, np.arange(terms))), shape=(n, terms)
        )
        dense_names = small and n * terms <= _DENSE_ENTRIES
        self.name_of_term: Any = name_of_term.toarray() if dense_names else name_of_term
        # Kinks per name, sorted, padded with weightless kinks (harmless in the formula).
        self.kinks_per_name = np.bincount(self.names, minlength=n) if terms else np.zeros(n, int)
        width = int(self.kinks_per_name.max(initial=0))
        self.kink = np.zeros((n, width))
        self.kink_term = np.full((n, width), terms, dtype=np.intp)  # `terms`: a zero weight
        if terms:
            order = np.argsort(self.names, kind="stable")
            starts = np.concatenate([[0], np.cumsum(self.kinks_per_name)[:-1]])
            slot = np.arange(terms) - starts[self.names[order]]
            self.kink[self.names[order], slot] = -self.offsets[order] / self.slopes[order]
            self.kink_term[self.names[order], slot] = order
            # Sort each name's kinks; pad with its last kink (weightless, keeps the order).
            real = self.kink_term < terms
            sorter = np.argsort(np.where(real, self.kink, np.inf), axis=1, kind="stable")
            self.kink = np.take_along_axis(self.kink, sorter, axis=1)
            self.kink_term = np.take_along_axis(self.kink_term, sorter, axis=1)
            real = self.kink_term < terms
            last = np.where(real, self.kink, -np.inf).max(axis=1, initial=-np.inf)
            last = np.where(np.isfinite(last), last, 0.0)
            self.kink = np.where(real, self.kink, last[:, None])

    @property
    def rows(self) -> int:
        return len(self.b)

    def primal(self, y: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """`z(y)`, the names strictly inside their piece and box, and the per-term weights."""
        lam, mu = y[: self.m_aff], y[self.m_aff :]
        centre = self.d - self.MT @ lam
        if not len(self.names):
            z = np.clip(centre, self.lo, self.hi)
            return z, (z > self.lo) & (z < self.hi), np.zeros(0)
        weights = np.abs(self.slopes) * (self.GT @ mu)
        s = np.append(weights, 0.0)[self.kink_term]
        n = len(centre)
        # Between kinks k and k+1 the minimizer would be centre + sum(s) - 2 sum_{j<=k} s_j;
        # those candidates fall and the pieces rise, so the first piece whose candidate is
        # not beyond its right end holds the minimizer, or its left kink does.
        below = np.concatenate([np.zeros((n, 1)), np.cumsum(s, axis=1)], axis=1)
        candidates = centre[:, None] + below[:, -1:] - 2.0 * below
        right = np.concatenate([self.kink, np.full((n, 1), np.inf)], axis=1)
        piece = (candidates > right).sum(axis=1)
        rows = np.arange(n)
        candidate = candidates[rows, piece]
        left = np.concatenate([np.full((n, 1), -np.inf), self.kink], axis=1)[rows, piece]
        on_kink = candidate < left
        z = np.clip(np.where(on_kink, left, candidate), self.lo, self.hi)
        return z, (z > self.lo) & (z < self.hi) & ~on_kink, weights

    def values(self, z: FloatArray) -> FloatArray:
        inner = self.slopes * z[self.names] + self.offsets
        return np.concatenate([self.M @ z, self.G @ np.abs(inner)])

    def rounding(self, z: FloatArray) -> FloatArray:
        """How far rounding can take each row's computed value from its exact one."""
        inner = np.abs(self.slopes * z[self.names]) + np.abs(self.offsets)
        size = np.concatenate([self.M_abs @ np.abs(z), self.G @ inner])
        return np.asarray(4.0 * np.finfo(float).eps * self.row_terms * size, dtype=float)

    def jacobian(self, z: FloatArray) -> FloatArray:
        """Each coupling row's derivative in each name at `z` (dense: the rows are few)."""
        if not len(self.names):
            return np.asarray(self.M_dense, dtype=float)
        inner = self.slopes * z[self.names] + self.offsets
        per_term = self.G_dense * (np.sign(inner) * self.slopes)[None, :]
        per_name = np.asarray(self.name_of_term @ per_term.T, dtype=float).T
        return np.vstack([self.M_dense, per_name])

    def objective(self, y: FloatArray, z: FloatArray, values: FloatArray) -> float:
        return float(0.5 * np.sum((z - self.d) ** 2) + y @ (values - self.b))


def _residual(y: FloatArray, gradient: FloatArray) -> float:
    """How far `y` is from maximizing the dual over y >= 0 (0 exactly there)."""
    return float(np.abs(y - np.maximum(y + gradient, 0.0)).max(initial=0.0))


def _newton(dual: _Dual) -> tuple[FloatArray, FloatArray, int] | None:
    """Maximize the dual over y >= 0; the multipliers, `z` and the iterations, or None."""
    m = dual.rows
    y = np.zeros(m)
    tolerance = FEASIBILITY * np.maximum(1.0, np.abs(dual.b))
    z, moving, _ = dual.primal(y)
    values = dual.values(z)
    q = dual.objective(y, z, values)
    size = max(float(np.abs(dual.d).max(initial=0.0)), _WEIGHT)
    # The dual's value sums a term per name: it cannot be computed closer than this.
    rounding = 4.0 * np.finfo(float).eps * (len(dual.d) + dual.rows)
    for iteration in range(1, MAX_ITERATIONS + 1):
        gradient = values - dual.b
        # Rows summing thousands of names cannot be computed closer than their rounding.
        allowed = tolerance + dual.rounding(z)
        if (gradient <= allowed).all() and (gradient[y > 0] >= -allowed[y > 0]).all():
            return y, z, iteration
        fixed = (y <= 0) & (gradient < 0)
        keep = np.flatnonzero(~fixed)
        J = dual.jacobian(z)[keep][:, moving]
        H = J @ J.T
        # Regularized as in Levenberg-Marquardt, by a multiple of the residual: a row whose
        # names are all held (a flat dual direction) gets a step of the size of the weight
        # changes instead of an unbounded one, and the regularization vanishes at the optimum
        # (quadratic convergence once the pieces are found).
        residual = float(np.abs(gradient[keep]).max())
        H[np.diag_indices_from(H)] += residual / size + FLOAT_NOISE * max(1.0, float(np.trace(H)))
        try:
            step = np.zeros(m)
            step[keep] = np.linalg.solve(H, gradient[keep])
        except np.linalg.LinAlgError:
            return None
        t = 1.0
        for _ in range(LINE_SEARCH_STEPS):
            trial = np.maximum(y + t * step, 0.0)
            z_t, moving_t, _ = dual.primal(trial)
            values_t = dual.values(z_t)
            q_t = dual.objective(trial, z_t, values_t)
            rise = float(gradient @ (trial - y))
            # Near the optimum the rise is below the objective's rounding; there a full step
            # that keeps the objective (to rounding) is taken when it halves the residual of
            # the optimality conditions.
            if q_t >= q + _ARMIJO * rise or (
                t == 1.0
                and q_t >= q - rounding * abs(q)
                and _residual(trial, values_t - dual.b) <= 0.5 * _residual(y, gradient)
            ):
                break
            # The maximizer of the parabola through q, its slope and q_t, kept in [t/10, t/2].
            shortfall = 2.0 * (q + rise - q_t)
            t *= min(0.5, max(0.1, rise / shortfall)) if shortfall > 0 else 0.5
        else:
            return None
        y, z, moving, values, q = trial, z_t, moving_t, values_t, q_t
    return None


def _box_duals(
    dual: _Dual, y: FloatArray, z: FloatArray, box: Box, duals: list[FloatArray]
) -> None:
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
    if not box.meet():
        return None
    dual = _Dual(np.asarray(d, dtype=float), box, coupling)
    solved = _newton(dual)
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

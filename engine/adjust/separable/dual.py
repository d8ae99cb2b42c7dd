r"""The separable Lagrangian of an adjustment QP (engine.adjust.separable.qp).

Given the multipliers `y = (lambda, mu) >= 0` of the coupling rows, each name's weight
change minimizes a 1-D convex piecewise quadratic over its interval, in closed form:

.. math::

    z_i(y) = \arg\min_{l_i \le z_i \le u_i} \tfrac12
    \big(z_i - d_i + (M^T \lambda)_i\big)^2
    + \sum_{j : \nu_j = i} |a_j| \, (G^T \mu)_j \, |z_i + e_j / a_j|

The dual :math:`q(y) = L(z(y), y)` is concave and piecewise quadratic; its gradient is the
rows' excess :math:`g = r(z(y)) - b` and a generalized Hessian is :math:`-J D J^T`, `J` the
rows' derivatives in the names at `z` and `D` the names strictly inside their piece and
interval (the names that move with `y`).

`J` is sparse: a coupling row has an entry per name it sums, and a gross limit per group
has hundreds of rows over a few names each. Problems of a few dozen rows (scale_back's ~20
traded names; project's budget, sectors and turnover over up to a few thousand names) are
kept dense, where numpy's products are faster than scipy's dispatch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.adjust.separable.fold import Box, Coupling
from models.typing import BoolArray, FloatArray

__all__ = ["DENSE_ENTRIES", "Dual", "curvature", "normal_matrix", "normal_work"]

DENSE_ENTRIES = 100_000
"""Coupling matrices with at most this many entries (dense) are multiplied as dense arrays.

About 50 rows over 2,000 names. Measured (docs/performance-notes.md, "The separable
solver's dense threshold"): `project` at n = 2000 with 13 rows took 11 ms sparse and 5.5 ms
dense; random layouts of 18-50 rows over 2,000 names were 0-30% faster dense; above a
hundred rows the normal matrix's dense product (rows^2 x names) loses to the sparse one.
"""

Matrix = Any
"""A dense `ndarray` (small problems) or a `scipy.sparse.csr_matrix`."""


class Dual:
    """The separable Lagrangian: `z(y)`, row values and the generalized Jacobian."""

    def __init__(self, d: FloatArray, box: Box, coupling: Coupling) -> None:
        n = len(d)
        self.d, self.lo, self.hi = d, box.lo, box.hi
        M = (
            sp.vstack(coupling.aff_matrices, format="csr")
            if coupling.aff_matrices
            else sp.csr_matrix((0, n))
        )
        G = (
            sp.block_diag(coupling.abs_sums, format="csr")
            if coupling.abs_sums
            else sp.csr_matrix((0, 0))
        )
        self.b = np.concatenate([np.zeros(0), *coupling.aff_bounds, *coupling.abs_bounds]).astype(
            float
        )
        self.m_aff = M.shape[0]
        self.row_terms = np.concatenate([np.diff(M.indptr), np.diff(G.indptr)]) + 1.0
        self.names = np.concatenate([np.zeros(0, dtype=np.intp), *coupling.term_names])
        self.slopes = np.concatenate([np.zeros(0), *coupling.term_slopes])
        self.offsets = np.concatenate([np.zeros(0), *coupling.term_offsets])
        # The matrices are used a dozen times per Newton iteration. Small ones are kept
        # dense: numpy multiplies a few dozen rows in microseconds, where scipy spends
        # ~10 us per product dispatching and checking formats.
        self.small = M.shape[0] * M.shape[1] + G.shape[0] * G.shape[1] <= DENSE_ENTRIES
        if self.small:
            self.M, self.G = M.toarray(), G.toarray()
            self.MT, self.GT = self.M.T.copy(), self.G.T.copy()
        else:
            self.M, self.G = M, G
            self.MT, self.GT = M.T.tocsr(), G.T.tocsr()
        self.M_abs = abs(self.M)
        self._jacobian_pattern(M, G, n)
        self._sorted_kinks(n)

    def _jacobian_pattern(self, M: sp.csr_matrix, G: sp.csr_matrix, n: int) -> None:
        """Where `J` has entries: the affine rows', then each absolute row's terms' names."""
        terms = len(self.names)
        if self.small:
            name_of_term = sp.csr_matrix(
                (np.ones(terms), (self.names, np.arange(terms))), shape=(n, terms)
            )
            dense = n * terms <= DENSE_ENTRIES
            self.name_of_term: Matrix = name_of_term.toarray() if dense else name_of_term
            return
        # Entry k of the stacked rows lands on (row, column); a row with two terms of one
        # name gets one entry, their sum (`np.bincount` over `self.slot`).
        counts = np.concatenate([np.diff(M.indptr), np.diff(G.indptr)])
        rows = np.repeat(np.arange(self.rows), counts)
        columns = np.concatenate([M.indices, self.names[G.indices]]).astype(np.intp)
        unique, self.slot = np.unique(rows * n + columns, return_inverse=True)
        self.pattern_columns = (unique % n).astype(np.intp)
        self.pattern_indptr = np.searchsorted(unique // n, np.arange(self.rows + 1))
        self.affine_data = np.asarray(M.data, dtype=float)
        self.term_of_entry = G.indices
        self.weight_of_entry = np.asarray(G.data, dtype=float)

    def _sorted_kinks(self, n: int) -> None:
        """Kinks per name, sorted, padded with weightless kinks (harmless in the formula)."""
        terms = len(self.names)
        self.kinks_per_name = np.bincount(self.names, minlength=n) if terms else np.zeros(n, int)
        width = int(self.kinks_per_name.max(initial=0))
        self.kink = np.zeros((n, width))
        self.kink_term = np.full((n, width), terms, dtype=np.intp)  # `terms`: a zero weight
        if not terms:
            return
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
        self._piece_ends(n)

    def _piece_ends(self, n: int) -> None:
        """Each name's pieces' left and right ends (the kinks, with -inf and +inf outside)."""
        self.right_ends = np.concatenate([self.kink, np.full((n, 1), np.inf)], axis=1)
        self.left_ends = np.concatenate([np.full((n, 1), -np.inf), self.kink], axis=1)
        self.row_starts = np.arange(n) * self.right_ends.shape[1]

    @property
    def rows(self) -> int:
        """The number of coupling rows (multipliers)."""
        return len(self.b)

    def primal(self, y: FloatArray) -> tuple[FloatArray, BoolArray, FloatArray]:
        """`z(y)`, the names strictly inside their piece and box, and the per-term weights."""
        lam, mu = y[: self.m_aff], y[self.m_aff :]
        centre = self.d - self.MT @ lam
        if not len(self.names):
            z = np.clip(centre, self.lo, self.hi)
            return z, (z > self.lo) & (z < self.hi), np.zeros(0)
        weights = np.abs(self.slopes) * (self.GT @ mu)
        s = np.append(weights, 0.0)[self.kink_term]
        # Between kinks k and k+1 the minimizer would be centre + sum(s) - 2 sum_{j<=k} s_j;
        # those candidates fall and the pieces rise, so the first piece whose candidate is
        # not beyond its right end holds the minimizer, or its left kink does.
        n, width = s.shape
        below = np.zeros((n, width + 1))
        np.cumsum(s, axis=1, out=below[:, 1:])
        candidates = (centre + below[:, -1])[:, None] - 2.0 * below
        piece = (candidates > self.right_ends).sum(axis=1)
        at = self.row_starts + piece
        candidate = candidates.ravel()[at]
        left = self.left_ends.ravel()[at]
        on_kink = candidate < left
        z = np.clip(np.where(on_kink, left, candidate), self.lo, self.hi)
        return z, (z > self.lo) & (z < self.hi) & ~on_kink, weights

    def values(self, z: FloatArray) -> FloatArray:
        """The coupling rows at `z` (each reads `row <= b`)."""
        inner = self.slopes * z[self.names] + self.offsets
        return np.concatenate([self.M @ z, self.G @ np.abs(inner)])

    def rounding(self, z: FloatArray) -> FloatArray:
        """How far rounding can take each row's computed value from its exact one."""
        inner = np.abs(self.slopes * z[self.names]) + np.abs(self.offsets)
        size = np.concatenate([self.M_abs @ np.abs(z), self.G @ inner])
        return np.asarray(4.0 * np.finfo(float).eps * self.row_terms * size, dtype=float)

    def jacobian(self, z: FloatArray, moving: BoolArray) -> Matrix:
        """Each row's derivative in each moving name at `z`.

        Dense: the moving names' columns only; sparse: every column, 0 in the held names.
        """
        inner = self.slopes * z[self.names] + self.offsets
        per_term = np.sign(inner) * self.slopes
        if self.small:
            per_name = np.asarray(self.name_of_term @ (self.G * per_term[None, :]).T).T
            return np.vstack([self.M, per_name])[:, moving]
        raw = np.concatenate(
            [self.affine_data, self.weight_of_entry * per_term[self.term_of_entry]]
        )
        data = np.bincount(self.slot, weights=raw, minlength=len(self.pattern_columns))
        data *= moving[self.pattern_columns]
        shape = (self.rows, len(self.d))
        return sp.csr_matrix((data, self.pattern_columns, self.pattern_indptr), shape=shape)

    def objective(self, y: FloatArray, z: FloatArray, values: FloatArray) -> float:
        """The Lagrangian at `z`, `y` (the dual's value when `z = z(y)`)."""
        return float(0.5 * np.sum((z - self.d) ** 2) + y @ (values - self.b))


def normal_work(coupling: Coupling, n: int) -> float:
    """`sum_i r_i^2`, `r_i` the coupling rows over name `i`: the products forming `J J^T`.

    Each name's column of `J` contributes the outer product of its `r_i` entries.
    """
    names = [m.indices for m in coupling.aff_matrices]
    for G, terms in zip(coupling.abs_sums, coupling.term_names, strict=True):
        names.append(terms[G.indices])
    if not names:
        return 0.0
    per_name = np.bincount(np.concatenate(names).astype(np.intp), minlength=n).astype(float)
    return float(per_name @ per_name)


def curvature(J: Matrix) -> FloatArray:
    """The diagonal of `J J^T`: each row's squared norm over the moving names."""
    if isinstance(J, np.ndarray):
        return np.asarray((J * J).sum(axis=1), dtype=float)
    return np.asarray(J.multiply(J).sum(axis=1), dtype=float).ravel()


def normal_matrix(J: Matrix, free: Any) -> Matrix:
    """`J_F J_F^T` of the free rows `F` only (dense for a dense `J`, else sparse CSC)."""
    Jf = J[free]
    return Jf @ Jf.T if isinstance(J, np.ndarray) else (Jf @ Jf.T).tocsc()

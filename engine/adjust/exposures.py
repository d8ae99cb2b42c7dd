r"""How the risk norms' factor exposures enter the direct conic solve (`engine.adjust.conic`).

A norm `s ||[F' y ; d o y]||` over `y = y0 + P E x` has the factor entries `F' y0 + F' P E x`
in its cone: `F' P E` is factors x columns and dense (every name moves every factor once
`F` carries the covariance's square root). Each norm hands its exposures here as `M` and
`root`, with `root' M = F' P E`:

- `M = loadings' P E` and `root` the factor covariance's square root, when the block keeps
  its loadings apart (`NormBlock.loadings`): `M` has the loadings' entries only (a name on
  its industry or sector and a few styles);
- `M = F' P E` and no `root` otherwise.

The cone then reads either `F' y0 + root' M x` written out (inline: the dense `F' P E` in
the cone's rows), or `F' y0 + root' g` over auxiliary exposure variables `g = M x`, held by
equality rows `M x - g = 0` and shared by every norm with the same `M` (volatility and
tracking error on one risk model). The variables are used when they store at most
`SHARE_BELOW` of the inline entries (`uses_variables`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.typing import FloatArray

__all__ = [
    "SHARE_BELOW",
    "NormExposures",
    "canonical",
    "grouped",
    "inline_entries",
    "reader_entries",
    "uses_variables",
]

IntArray = np.ndarray[Any, np.dtype[np.intp]]

SHARE_BELOW = 0.75
"""Exposure variables are used when the entries they store (`M`, one per variable in the
equality rows, `root` in each cone) are at most this share of the inline `F' P E` entries.

Measured on project with volatility and tracking error (n = 500 to 2000): a variable per
factor storing as many entries as inline made each interior-point iteration ~20% dearer
(more KKT rows and columns); storing half of them (the two norms sharing them, or a sector
model's loadings) made it 23-30% cheaper. The break-even lies between; 0.75 takes the
variables only where they clearly store less."""


@dataclass
class NormExposures:
    """One norm's exposures: the cone rows `at` read `root' M x` (`M x` without a root)."""

    matrix: sp.csr_matrix
    """`M`, factors x columns, canonical (sorted indices, no duplicates or stored zeros)."""
    root: FloatArray | None
    at: IntArray

    def same_moves(self, other: NormExposures) -> bool:
        """True when both have the same `M` (the same exposure variables serve both)."""
        a, b = self.matrix, other.matrix
        return (
            a.shape == b.shape
            and a.nnz == b.nnz
            and np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data)
        )

    def dense(self) -> FloatArray:
        """`root' M` (`F' P E`), factors x columns."""
        if self.root is None:
            return np.asarray(self.matrix.toarray())
        return np.asarray((self.matrix.T @ self.root).T)


def canonical(matrix: Any) -> sp.csr_matrix:
    """`matrix` as CSR with sorted indices, no duplicates and no stored zeros."""
    out = sp.csr_matrix(matrix, dtype=float)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def grouped(exposures: list[NormExposures]) -> list[list[NormExposures]]:
    """The norms' exposures, those with the same `M` together, in their order."""
    groups: list[list[NormExposures]] = []
    for item in exposures:
        same = next((g for g in groups if g[0].same_moves(item)), None)
        if same is None:
            groups.append([item])
        else:
            same.append(item)
    return groups


def uses_variables(group: list[NormExposures]) -> bool:
    """True when exposure variables store at most `SHARE_BELOW` of the inline entries."""
    factors = group[0].matrix.shape[0]
    inline = sum(int(np.count_nonzero(item.dense())) for item in group)
    stored = group[0].matrix.nnz + factors
    for item in group:
        stored += factors if item.root is None else int(np.count_nonzero(item.root))
    return bool(stored <= SHARE_BELOW * inline)


def inline_entries(item: NormExposures) -> tuple[IntArray, IntArray, FloatArray]:
    """The cone's entries of `-F' P E` (its rows `b - A x` read `F' y0 + F' P E x`)."""
    dense = item.dense()
    rows, cols = np.nonzero(dense)
    rows, cols = rows.astype(np.intp), cols.astype(np.intp)
    return item.at[rows], cols, -dense[rows, cols]


def reader_entries(item: NormExposures, first: int) -> tuple[IntArray, IntArray, FloatArray]:
    """The cone's entries of `-root'` over the variables `g` from column `first`."""
    factors = item.matrix.shape[0]
    turn = np.eye(factors) if item.root is None else item.root.T
    rows, cols = np.nonzero(turn)
    rows, cols = rows.astype(np.intp), cols.astype(np.intp)
    return item.at[rows], first + cols, -turn[rows, cols]

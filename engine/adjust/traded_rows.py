"""The rows of a block as the scale_back problem sees them: only those the traded names move.

scale_back varies the traded names alone (`u`, one variable per traded symbol), so a row
with no coefficient on a traded name is a constant of the problem. Keeping such rows costs
the solver, and cvxpy's parameter stuffing, the size of the whole universe (a weight bound
per name, an absolute-value auxiliary per turnover term) for a problem of ~20 variables.

A `TradedView` says which of a block's rows enter the problem (`kept`, original row indices)
and builds them over `u`. A block chooses its view (`Block.restricted`): affine and
absolute-sum blocks are restricted; every other block kind opts out and keeps all its rows
through `picks @ u`, so new kinds work unchanged. A view depends on
the block's structure and the traded set only (both in the compile cache key); `fill` takes
the request's block of that structure.

Dropped rows keep their pre-trade value for every `u`. The adjuster's bounds never put a
row beyond its pre-trade value unless passive breaches must be cured; the compiled problem
reports the largest excess of a dropped row (`CompiledProblem.fixed_excess`) for that case.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock, AffineBlock, Block, Params
from models.typing import FloatArray

__all__ = ["AllTraded", "TradedView", "row_view"]

IntArray = np.ndarray[Any, np.dtype[np.intp]]
B = TypeVar("B", bound=Block)


class TradedView(ABC, Generic[B]):
    """A block's rows in an adjustment problem, over that problem's variable.

    A view is built from one block and filled with each request's block of that structure,
    so of the same kind `B`.
    """

    kept: IntArray | None
    """The block's rows present in the problem, ascending; None when all of them are."""

    dropped: IntArray
    """The block's rows left out (constant in the problem)."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of rows in the problem (0: the row set adds no constraint)."""

    @abstractmethod
    def declare(self, block: B) -> Params:
        """The Parameters of the kept rows."""

    @abstractmethod
    def fill(self, block: B, params: Params, w0: FloatArray) -> None:
        """Give the Parameters the request's values (`block` has the view's structure)."""

    @abstractmethod
    def expression(self, block: B, variable: cp.Variable, params: Params) -> cp.Expression:
        """The kept rows in cvxpy."""


class AllTraded(TradedView[Block]):
    """Every row, through the block's own cvxpy form of `delta = picks @ variable`."""

    def __init__(self, block: Block, picks: sp.spmatrix | None) -> None:
        self.kept = None
        self.dropped = np.empty(0, dtype=np.intp)
        self._picks = picks
        self._rows = block.rows

    @property
    def size(self) -> int:
        """Every row of the block."""
        return self._rows

    def declare(self, block: Block) -> Params:
        """The block's own Parameters."""
        return block.declare()

    def fill(self, block: Block, params: Params, w0: FloatArray) -> None:
        """The block's own fill."""
        block.fill(params, w0)

    def expression(self, block: Block, variable: cp.Variable, params: Params) -> cp.Expression:
        """The block's own cvxpy form, of the weight change the variable makes."""
        delta: Any = variable if self._picks is None else self._picks @ variable
        return block.expression(delta, params)


def _moved_rows(matrix: sp.csr_matrix) -> IntArray:
    """Rows of a sparse matrix with a nonzero entry."""
    return np.flatnonzero(abs(matrix).sum(axis=1).A.ravel() > 0).astype(np.intp)


def _complement(kept: IntArray, n: int) -> IntArray:
    mask = np.ones(n, dtype=bool)
    mask[kept] = False
    return np.flatnonzero(mask).astype(np.intp)


class AffineTraded(TradedView[AffineBlock]):
    """Rows `A w + c` restricted to the traded columns: `A[kept][:, T] u + (A w0 + c)[kept]`.

    A non-structural `A` (a Parameter, its values vary between requests of one structure)
    keeps every row, as which rows are zero on T is not part of the structure; its columns
    are still cut to T.
    """

    def __init__(self, block: AffineBlock, traded: list[int]) -> None:
        self._structural = block.structural
        self._traded = traded
        if block.structural:
            columns = sp.csr_matrix(block.A)[:, traded]
            self.kept = _moved_rows(columns)
            self.dropped = _complement(self.kept, block.rows)
            self._matrix: sp.csr_matrix | None = sp.csr_matrix(columns[self.kept])
        else:
            self.kept, self.dropped, self._matrix = None, np.empty(0, dtype=np.intp), None
        self._rows = block.rows

    @property
    def size(self) -> int:
        return self._rows if self.kept is None else len(self.kept)

    def declare(self, block: AffineBlock) -> Params:
        params: Params = {"offset": cp.Parameter(self.size, name="offset")}
        if not self._structural:
            params["A"] = cp.Parameter((self.size, len(self._traded)), name="A")
        return params

    def fill(self, block: AffineBlock, params: Params, w0: FloatArray) -> None:
        values = block.values(w0)
        params["offset"].value = values if self.kept is None else values[self.kept]
        if "A" in params:
            A = block.A
            params["A"].value = (
                sp.csr_matrix(A)[:, self._traded].toarray()
                if sp.issparse(A)
                else np.asarray(A, dtype=float)[:, self._traded]
            )

    def expression(
        self, block: AffineBlock, variable: cp.Variable, params: Params
    ) -> cp.Expression:
        A: Any = params["A"] if "A" in params else self._matrix
        return A @ variable + params["offset"]


class AbsSumTraded(TradedView[AbsSumBlock]):
    """Rows `G |A w + c| + k` restricted to the terms that touch a traded column.

    A term with no traded column is constant, `|(A w0 + c)_j|`; through `G` it joins the
    constant `k` of each kept row. Rows of `G` with no kept term are dropped.
    """

    def __init__(self, block: AbsSumBlock, traded: list[int]) -> None:
        n_terms = int(np.shape(block.A)[0])
        columns = sp.csr_matrix(block.A)[:, traded]
        self._terms = _moved_rows(columns)
        self._fixed_terms = _complement(self._terms, n_terms)
        self._matrix = sp.csr_matrix(columns[self._terms])
        if block.G is None:
            self.kept = self._terms
            self._sum: sp.csr_matrix | None = None
            self._fixed_sum: sp.csr_matrix | None = None
        else:
            G = sp.csr_matrix(block.G)
            self.kept = _moved_rows(sp.csr_matrix(G[:, self._terms]))
            rows = sp.csr_matrix(G[self.kept])
            self._sum = sp.csr_matrix(rows[:, self._terms])
            self._fixed_sum = sp.csr_matrix(rows[:, self._fixed_terms])
        self.dropped = _complement(self.kept, block.rows)

    @property
    def size(self) -> int:
        assert self.kept is not None
        return len(self.kept)

    def declare(self, block: AbsSumBlock) -> Params:
        return {
            "offset": cp.Parameter(len(self._terms), name="offset"),
            "k": cp.Parameter(self.size, name="k"),
        }

    def fill(self, block: AbsSumBlock, params: Params, w0: FloatArray) -> None:
        assert self.kept is not None
        terms = np.asarray(block.A @ w0).ravel() + block.c
        params["offset"].value = terms[self._terms]
        k = np.zeros(self.size) if block.k is None else block.k[self.kept]
        if self._fixed_sum is not None:
            k = k + self._fixed_sum @ np.abs(terms[self._fixed_terms])
        params["k"].value = k

    def expression(
        self, block: AbsSumBlock, variable: cp.Variable, params: Params
    ) -> cp.Expression:
        terms = cp.abs(self._matrix @ variable + params["offset"])
        summed = terms if self._sum is None else self._sum @ terms
        return summed + params["k"]


class _Views:
    """The scale_back views by block kind (`engine.compile.representations.RestrictedForms`)."""

    def __init__(self, traded: tuple[int, ...], picks: sp.spmatrix) -> None:
        self.columns = list(traded)
        self.picks = picks

    def affine(self, block: AffineBlock) -> TradedView[Any]:
        return AffineTraded(block, self.columns)

    def abs_sum(self, block: AbsSumBlock) -> TradedView[Any]:
        return AbsSumTraded(block, self.columns)

    def unsupported(self, block: Block) -> TradedView[Any]:
        return AllTraded(block, self.picks)


def row_view(block: Block, traded: tuple[int, ...], picks: sp.spmatrix) -> TradedView[Any]:
    """The scale_back view of a block: restricted where its kind allows it."""
    return block.restricted(_Views(traded, picks))

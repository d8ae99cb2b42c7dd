"""Row blocks: the numeric and the cvxpy form of a vector of constraint rows.

A block is one constraint kind's rows for one request: `values(w)` evaluates every row at
weights `w` over V with numpy (the checker), and `expression(delta, params)` builds the same
rows in cvxpy over the weight change `delta = w - w0` (the adjuster). cvxpy is the source of
truth; tests evaluate both forms at random points and hold them together.

Everything that varies between requests with the same structure (w0-dependent offsets,
attribute values, risk factors, scenario returns) is a `cp.Parameter`, filled by `fill`;
`structure()` returns what the cvxpy problem is built from, so two blocks with equal
structures compile to the same problem (the compile cache key).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from engine.compile.representations import Representation
from models.typing import FloatArray

if TYPE_CHECKING:
    from engine.compile.representations import (
        BatchForms,
        ConicForms,
        ExportForms,
        IntegerForms,
        RestrictedForms,
        RowShiftForms,
        SeparableForms,
        TrackerForms,
    )

__all__ = [
    "AbsSumBlock",
    "AffineBlock",
    "Block",
    "SparseMatVec",
    "digest",
]

Params = dict[str, cp.Parameter]
Form = TypeVar("Form")
"""What a stage builds from a block (a view, a fold, a tracker part, rows...)."""


def digest(*arrays: Any) -> str:
    """A short content hash of arrays and scalars, for structure keys.

    A sparse matrix is hashed through its canonical CSR arrays, never densified: the
    selection matrices of per-name rows are n x n, and a dense copy of one is the n^2 term
    that memory must not have. (A sparse matrix and a dense array of the same values hash
    differently: at worst a cache miss.)
    """
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        if sp.issparse(a):
            csr = sp.csr_matrix(a, copy=True)
            csr.sum_duplicates()  # also sorts the indices: one form per matrix
            csr.eliminate_zeros()
            h.update(f"csr{csr.shape}".encode())
            for part in (csr.indptr, csr.indices):
                h.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(csr.data, dtype=float).tobytes())
            continue
        arr = np.ascontiguousarray(np.asarray(a, dtype=float))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


class SparseMatVec:
    """`A @ w` for a fixed matrix `A`, without scipy's per-call overhead.

    scipy spends ~10 us per sparse product dispatching, far more than the arithmetic of a
    few hundred entries; a checked request makes dozens. The CSR entries are summed row by
    row in their stored order, as scipy's own kernel does, so the numbers are the same.
    """

    __slots__ = ("_cols", "_data", "_n_rows", "_rows", "matrix")

    def __init__(self, matrix: FloatArray | sp.spmatrix) -> None:
        self.matrix = matrix
        self._data: FloatArray | None = None
        if sp.issparse(matrix):
            csr = sp.csr_matrix(matrix)
            self._n_rows = int(csr.shape[0])
            self._cols = np.asarray(csr.indices, dtype=np.intp)
            self._data = np.asarray(csr.data, dtype=float)
            self._rows = np.repeat(np.arange(self._n_rows), np.diff(csr.indptr))

    def __call__(self, w: FloatArray) -> FloatArray:
        """The product with a vector `w` (any other operand goes through scipy or numpy)."""
        if np.ndim(w) != 1:
            return np.asarray(self.matrix @ w)
        if self._data is None:
            return np.asarray(self.matrix @ w).ravel()
        summed = np.bincount(self._rows, weights=self._data * w[self._cols], minlength=self._n_rows)
        return np.asarray(summed, dtype=float)  # float already (weights): no copy, typed


def _times(owner: object, matrix: FloatArray | sp.spmatrix, w: FloatArray) -> FloatArray:
    """`matrix @ w` through a `SparseMatVec` kept on `owner`, rebuilt if the matrix is swapped."""
    products: dict[int, SparseMatVec] = owner.__dict__.setdefault("_row_products", {})
    product = products.get(id(matrix))
    if product is None or product.matrix is not matrix:
        product = products[id(matrix)] = SparseMatVec(matrix)
    return product(w)


@dataclass
class Block(ABC):
    """Rows `value(w) <= limit` (sense "le") or `value(w) >= limit` (sense "ge").

    Besides `values` and `expression`, a block owns the forms later stages read it in
    (`engine.compile.representations`): each method below hands the block to the stage's
    builder for its kind, or to `unsupported` (the stage's explicit opt-out). A kind
    overrides the methods of the forms it has and lists them in `representations`.
    """

    representations: ClassVar[frozenset[Representation]] = frozenset()
    """The forms this kind implements; every other one answers `forms.unsupported`."""

    @property
    @abstractmethod
    def rows(self) -> int:
        """Number of rows."""

    @abstractmethod
    def values(self, w: FloatArray) -> FloatArray:
        """Every row's value at weights `w` (over V)."""

    @abstractmethod
    def structure(self) -> tuple[Any, ...]:
        """Hashable description of everything the cvxpy form is built from."""

    @abstractmethod
    def declare(self) -> Params:
        """Create the cvxpy Parameters of this structure (once per compiled problem)."""

    @abstractmethod
    def fill(self, params: Params, w0: FloatArray) -> None:
        """Give the Parameters this request's values."""

    @abstractmethod
    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        """The rows in cvxpy, as a function of the weight change `delta = w - w0`."""

    @abstractmethod
    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        """Upper bound per row on `|value(w + e) - value(w)|` over all `|e_i| <= eps_i`.

        Used to tighten limits so that rounding trades to lots cannot break them.
        """

    @property
    def needs_cone(self) -> bool:
        """True when the cvxpy form needs a second-order cone solver (not just a QP one)."""
        return False

    def gradient(self, w: FloatArray) -> FloatArray:
        """Gradient of a single-row cone block at `w` (the tangent plane used to polish)."""
        raise NotImplementedError(f"{type(self).__name__} has no gradient")

    def restricted(self, forms: RestrictedForms[Form]) -> Form:
        """The scale_back view of the rows over the traded names."""
        return forms.unsupported(self)

    def separable(self, forms: SeparableForms[Form]) -> Form:
        """The fold of the rows into the separable QP."""
        return forms.unsupported(self)

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        """The part of the lot-rounding violation tracker that follows the rows."""
        return forms.unsupported(self)

    def integer(self, forms: IntegerForms[Form]) -> Form:
        """The rows over lot counts in the integer search."""
        return forms.unsupported(self)

    def export(self, forms: ExportForms[Form]) -> Form:
        """The solver-neutral export of the rows."""
        return forms.unsupported(self)

    def row_shift(self, forms: RowShiftForms[Form]) -> Form:
        """The estimated shift of a row when single weights move (the report's screen)."""
        return forms.unsupported(self)

    def conic(self, forms: ConicForms[Form]) -> Form:
        """The rows as numeric cone data for the direct solves (no cvxpy)."""
        return forms.unsupported(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        """The rows over a stack of weight vectors at once (the batch checker)."""
        return forms.unsupported(self)

    def _values_are(self, owner: type[Block]) -> bool:
        """True when this block's values are `owner`'s own (no subclass computes its own)."""
        return type(self).values is owner.values


def _matrix_param(matrix: FloatArray | sp.spmatrix, *, structural: bool, name: str) -> Any:
    """A constant when the matrix is structural, else a Parameter of its shape."""
    if structural:
        return sp.csr_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix)
    return cp.Parameter(np.shape(matrix), name=name)


def _dense(matrix: FloatArray | sp.spmatrix) -> FloatArray:
    if sp.issparse(matrix):
        return np.asarray(sp.csr_matrix(matrix).toarray(), dtype=float)
    return np.asarray(matrix, dtype=float)


@dataclass
class AffineBlock(Block):
    r"""Rows `A w + c`.

    .. math:: v_r(w) = \sum_i A_{ri} w_i + c_r

    `A` is a constant of the compiled problem when `structural` (0/1 memberships), else a
    Parameter (attribute values, stress shocks).
    """

    A: FloatArray | sp.spmatrix
    c: FloatArray
    structural: bool = True

    representations: ClassVar[frozenset[Representation]] = frozenset(Representation)

    @property
    def rows(self) -> int:
        return int(np.shape(self.A)[0])

    def values(self, w: FloatArray) -> FloatArray:
        return _times(self, self.A, w) + self.c

    def structure(self) -> tuple[Any, ...]:
        key = digest(self.A) if self.structural else np.shape(self.A)
        return ("affine", key, self.rows)

    def declare(self) -> Params:
        params: Params = {"offset": cp.Parameter(self.rows, name="offset")}
        if not self.structural:
            params["A"] = cp.Parameter(np.shape(self.A), name="A")
        return params

    def fill(self, params: Params, w0: FloatArray) -> None:
        params["offset"].value = self.values(w0)
        if "A" in params:
            params["A"].value = _dense(self.A)

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        A = params["A"] if "A" in params else _matrix_param(self.A, structural=True, name="A")
        return A @ delta + params["offset"]

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        return np.asarray(abs(self.A) @ eps).ravel()

    def restricted(self, forms: RestrictedForms[Form]) -> Form:
        return forms.affine(self)

    def separable(self, forms: SeparableForms[Form]) -> Form:
        return forms.affine(self)

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        # The tracker follows `A w + c` itself: a subclass with values of its own opts out.
        return forms.affine(self) if self._values_are(AffineBlock) else forms.unsupported(self)

    def integer(self, forms: IntegerForms[Form]) -> Form:
        return forms.affine(self)

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.affine(self)

    def row_shift(self, forms: RowShiftForms[Form]) -> Form:
        return forms.affine(self)

    def conic(self, forms: ConicForms[Form]) -> Form:
        return forms.affine(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        # As for the tracker: the batch form is `A w + c` itself.
        return forms.affine(self) if self._values_are(AffineBlock) else forms.unsupported(self)


@dataclass
class AbsSumBlock(Block):
    r"""Rows summing absolute terms: `G |A w + c| + k`.

    .. math:: v_r(w) = \sum_j G_{rj} \, |(A w + c)_j| + k_r

    With `G` = identity this is a vector of absolute values (no-holding, no-trade, trade
    limits); with a 0/1 `G` it is a gross exposure per group; `k` carries terms that do not
    depend on w (benchmark names outside V in an active gross measure).
    """

    A: FloatArray | sp.spmatrix
    c: FloatArray
    G: FloatArray | sp.spmatrix | None = None
    k: FloatArray | None = None

    representations: ClassVar[frozenset[Representation]] = frozenset(Representation)

    @property
    def rows(self) -> int:
        return int(np.shape(self.A)[0]) if self.G is None else int(np.shape(self.G)[0])

    def _k(self) -> FloatArray:
        return np.zeros(self.rows) if self.k is None else self.k

    def values(self, w: FloatArray) -> FloatArray:
        terms = np.abs(_times(self, self.A, w) + self.c)
        summed = terms if self.G is None else _times(self, self.G, terms)
        return summed + self._k()

    def structure(self) -> tuple[Any, ...]:
        g = None if self.G is None else digest(self.G)
        return ("abs_sum", digest(self.A), g, self.rows)

    def declare(self) -> Params:
        n_terms = int(np.shape(self.A)[0])
        return {
            "offset": cp.Parameter(n_terms, name="offset"),
            "k": cp.Parameter(self.rows, name="k"),
        }

    def fill(self, params: Params, w0: FloatArray) -> None:
        params["offset"].value = np.asarray(self.A @ w0).ravel() + self.c
        params["k"].value = self._k()

    def expression(self, delta: cp.Expression, params: Params) -> cp.Expression:
        A = _matrix_param(self.A, structural=True, name="A")
        terms = cp.abs(A @ delta + params["offset"])
        if self.G is not None:
            G = _matrix_param(self.G, structural=True, name="G")
            return G @ terms + params["k"]
        return terms + params["k"]

    def perturbation_bound(self, eps: FloatArray) -> FloatArray:
        per_term = np.asarray(abs(self.A) @ eps).ravel()
        return per_term if self.G is None else np.asarray(abs(self.G) @ per_term).ravel()

    def restricted(self, forms: RestrictedForms[Form]) -> Form:
        return forms.abs_sum(self)

    def separable(self, forms: SeparableForms[Form]) -> Form:
        return forms.abs_sum(self)

    def tracker(self, forms: TrackerForms[Form]) -> Form:
        # As for AffineBlock: the tracker follows the terms itself.
        return forms.abs_sum(self) if self._values_are(AbsSumBlock) else forms.unsupported(self)

    def integer(self, forms: IntegerForms[Form]) -> Form:
        return forms.abs_sum(self)

    def export(self, forms: ExportForms[Form]) -> Form:
        return forms.abs_sum(self)

    def row_shift(self, forms: RowShiftForms[Form]) -> Form:
        return forms.abs_sum(self)

    def conic(self, forms: ConicForms[Form]) -> Form:
        return forms.abs_sum(self)

    def batch(self, forms: BatchForms[Form]) -> Form:
        return forms.abs_sum(self) if self._values_are(AbsSumBlock) else forms.unsupported(self)

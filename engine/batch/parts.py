"""Each block kind's rows over K weight vectors at once (the `batch` representation).

A block hands itself to `BatchParts` (`block.batch(parts)`, see
`engine.compile.representations.BatchForms`), which returns a `Part`: the block's numbers
as arrays (`data`) and a function of an array module that evaluates every row for a
`(K, n)` stack of weight vectors. The same function runs on NumPy and, traced once under
`jax.jit`, on JAX: the math is written once. A block without a batch form (custom
expressions, a subclass with values of its own) becomes a `Fallback`, evaluated one vector
at a time through its own `values`, which is the single-request checker's arithmetic.

The numbers are the compiled rows' own (`A`, `c`, `G`, the risk model's factors `F`, `d`,
the scenario returns), read from the blocks: nothing is re-derived from the policies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import CVaRBlock, NormBlock, SumLargestAbsBlock
from engine.compile.piecewise import (
    AboveThresholdSumBlock,
    CappedSumBlock,
    OpenCountBlock,
    PositivePartSumBlock,
)
from engine.tolerances import BATCH_RECHECK_BAND, CVAR_TAIL_SNAP, OPEN_POSITION, THRESHOLD_TOLERANCE
from models.typing import FloatArray

__all__ = ["DENSE_ROWS", "BatchParts", "Fallback", "LinearMap", "Ops", "Part"]

Array = Any
"""A NumPy or a JAX array."""

Evaluate = Callable[["Ops", tuple[Array, ...], Array], Array]


TopExcess = Callable[[Array, Array, Array], Array]


class Ops:
    """The array module a part evaluates with, and the operations that differ by backend."""

    def __init__(
        self,
        xp: Any,
        segment_sum: Callable[[Array, tuple[Array, ...], int], Array],
        top_excess: TopExcess | None = None,
    ):
        self.xp = xp
        self._segment_sum = segment_sum
        self._top_excess = top_excess

    def segment_sum(self, values: Array, data: tuple[Array, ...], rows: int) -> Array:
        """Sum the columns of `values` (K, nnz) into `rows` segments (CSR order)."""
        return self._segment_sum(values, data, rows)

    def top_excess(self, values: Array, limits: Array, sign: Array) -> Array:
        """(K,) each row's largest excess `(values - limits) * sign`, of `values` (K, rows).

        +inf where the row holds a value that is not finite.
        """
        if self._top_excess is not None:
            return self._top_excess(values, limits, sign)
        xp = self.xp
        # Selected before the maximum: XLA's maximum over a long row may drop a nan.
        excess = xp.where(xp.isfinite(values), (values - limits) * sign, xp.inf)
        return xp.max(excess, axis=1)


@dataclass(frozen=True)
class Part:
    """Rows of one block over K vectors: `evaluate(ops, data, W)` is `(K, rows)`.

    `fragile`, when set, answers `(K,)` booleans: the vectors at which a value is within
    float rounding of a jump (a threshold rule), re-checked through the single-request
    checker.
    """

    rows: int
    data: tuple[Array, ...]
    evaluate: Evaluate
    fragile: Evaluate | None = None


@dataclass(frozen=True)
class Fallback:
    """A block evaluated one vector at a time, through its own `values`."""

    block: Block


DENSE_ROWS = 32
"""A linear map with at most this many rows is applied as a dense matrix (sector caps,
cash, exposures: rows x n multiply-adds per vector); more rows as a gather (one entry a
row: name caps) or a segmented sum of its entries (never an n x n dense matrix)."""


@dataclass(frozen=True)
class LinearMap:
    """`M @ w` for every vector of a stack, in the cheapest exact form for M's shape."""

    mode: str
    rows: int
    data: tuple[Array, ...]

    @classmethod
    def of(cls, matrix: FloatArray | sp.spmatrix) -> LinearMap:
        """Choose the form: gather (one entry a row), dense (few rows) or segmented."""
        rows, n = (int(x) for x in np.shape(matrix))
        csr = sp.csr_matrix(matrix)
        csr.sum_duplicates()
        counts = np.diff(csr.indptr)
        if rows and np.all(counts == 1):
            cols, vals = csr.indices.astype(np.int64), csr.data.astype(float)
            if rows == n and np.array_equal(cols, np.arange(n)):
                # Every column in order (name caps, turnover): no gather at all.
                return (
                    cls("identity", rows, ())
                    if np.all(vals == 1.0)
                    else cls("scale", rows, (vals,))
                )
            return cls("gather", rows, (cols, vals))
        if rows <= DENSE_ROWS or csr.nnz * 4 >= rows * n:
            return cls("dense", rows, (np.asarray(csr.toarray(), dtype=float).T,))
        row_ids = np.repeat(np.arange(rows), counts).astype(np.int64)
        nonempty = np.flatnonzero(counts > 0).astype(np.int64)
        starts = csr.indptr[:-1][nonempty].astype(np.int64)
        data = (csr.indices.astype(np.int64), csr.data.astype(float), row_ids, starts, nonempty)
        return cls("segment", rows, data)

    @staticmethod
    def apply(ops: Ops, mode: str, rows: int, data: tuple[Array, ...], W: Array) -> Array:
        """The `(K, rows)` products of the stack `W` (K, n)."""
        if mode == "identity":
            return W
        if mode == "scale":
            return W * data[0]
        if mode == "gather":
            cols, vals = data
            return W[:, cols] * vals
        if mode == "dense":
            return W @ data[0]
        cols, vals = data[0], data[1]
        return ops.segment_sum(W[:, cols] * vals, data, rows)


def _linear(matrix: FloatArray | sp.spmatrix) -> tuple[LinearMap, Callable[..., Array]]:
    """The map and a function `(ops, data, W)` applying it."""
    lm = LinearMap.of(matrix)
    mode, rows = lm.mode, lm.rows

    def apply(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
        return LinearMap.apply(ops, mode, rows, data, W)

    return lm, apply


def _vector(x: Any, size: int) -> FloatArray:
    return np.broadcast_to(np.asarray(x, dtype=float).ravel(), (size,)).copy()


class BatchParts:
    """The batch forms of the block kinds (`engine.compile.representations.BatchForms`)."""

    def affine(self, block: AffineBlock) -> Part | Fallback:
        """`A w + c`."""
        lm, apply = _linear(block.A)
        m = lm.data

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            return apply(ops, data[:-1], W) + data[-1]

        return Part(block.rows, (*m, _vector(block.c, block.rows)), evaluate)

    def abs_sum(self, block: AbsSumBlock) -> Part | Fallback:
        """`G |A w + c| + k` (G the identity when absent)."""
        terms, apply_a = _linear(block.A)
        a_len = len(terms.data)
        c = _vector(block.c, terms.rows)
        k = _vector(0.0 if block.k is None else block.k, block.rows)
        if block.G is None:

            def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
                return ops.xp.abs(apply_a(ops, data[:a_len], W) + data[a_len]) + data[-1]

            return Part(block.rows, (*terms.data, c, k), evaluate)
        groups, apply_g = _linear(block.G)

        def summed(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            magnitudes = ops.xp.abs(apply_a(ops, data[:a_len], W) + data[a_len])
            return apply_g(ops, data[a_len + 1 : -1], magnitudes) + data[-1]

        return Part(block.rows, (*terms.data, c, *groups.data, k), summed)

    def sum_largest_abs(self, block: SumLargestAbsBlock) -> Part | Fallback:
        """The sum of the `top_k` largest magnitudes (a sort per vector)."""
        top = block.top_k

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            k = min(top, W.shape[1])
            ordered = xp.sort(xp.abs(W), axis=1)
            return xp.sum(ordered[:, W.shape[1] - k :], axis=1, keepdims=True)

        return Part(1, (), evaluate)

    def norm(self, block: NormBlock) -> Part | Fallback:
        """`s sqrt(|F'y|^2 + |d * y|^2)`, `y = P w + c`: O(n k) a vector, never n x n."""
        image, apply_p = _linear(block.P)
        p_len = len(image.data)
        scale = float(block.scale)
        d = None if block.d is None else np.asarray(block.d, dtype=float)
        arrays = (*image.data, _vector(block.c, image.rows), np.asarray(block.F, dtype=float))

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            y = apply_p(ops, data[:p_len], W) + data[p_len]
            total = xp.sum((y @ data[p_len + 1]) ** 2, axis=1)
            if len(data) > p_len + 2:
                total = total + xp.sum((data[p_len + 2] * y) ** 2, axis=1)
            return (scale * xp.sqrt(total))[:, None]

        return Part(1, arrays if d is None else (*arrays, d), evaluate)

    def cvar(self, block: CVaRBlock) -> Part | Fallback:
        """CVaR of the losses `-R w`: the worst `(1 - beta) S` averaged (as the checker)."""
        s = int(block.R.shape[0])
        tail = (1.0 - block.beta) * s
        whole = int(np.floor(tail + CVAR_TAIL_SNAP))

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            losses = -(W @ data[0])
            ordered = xp.sort(losses, axis=1)[:, ::-1]
            total = xp.sum(ordered[:, :whole], axis=1)
            if whole < s:
                total = total + (tail - whole) * ordered[:, whole]
            return (total / tail)[:, None]

        return Part(1, (np.asarray(block.R, dtype=float).T,), evaluate)

    def capped_sum(self, block: CappedSumBlock) -> Part | Fallback:
        """`a'w + k + sum_g min((G w)_g, cap_g)`."""
        groups, apply_g = _linear(block.G)
        g_len = len(groups.data)
        k = float(block.k)
        arrays = (*groups.data, _vector(block.cap, groups.rows), np.asarray(block.a, dtype=float))

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            capped = xp.minimum(apply_g(ops, data[:g_len], W), data[g_len])
            return (W @ data[g_len + 1] + k + xp.sum(capped, axis=1))[:, None]

        return Part(1, arrays, evaluate)

    def positive_part_sum(self, block: PositivePartSumBlock) -> Part | Fallback:
        """`sum_g max((G w)_g + c_g, 0)`."""
        groups, apply_g = _linear(block.G)
        g_len = len(groups.data)

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            shifted = apply_g(ops, data[:g_len], W) + data[g_len]
            return xp.sum(xp.maximum(shifted, 0.0), axis=1, keepdims=True)

        return Part(1, (*groups.data, _vector(block.c, groups.rows)), evaluate)

    def above_threshold(self, block: AboveThresholdSumBlock) -> Part | Fallback:
        """The total weight of the groups above the threshold; fragile near the jump."""
        groups, apply_g = _linear(block.G)
        jump = float(block.threshold) + THRESHOLD_TOLERANCE

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            y = apply_g(ops, data, W)
            return xp.sum(xp.where(y > jump, y, 0.0), axis=1, keepdims=True)

        def fragile(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            y = apply_g(ops, data, W)
            band = BATCH_RECHECK_BAND * (1.0 + xp.sum(xp.abs(W), axis=1))
            return xp.any(xp.abs(y - jump) <= band[:, None], axis=1)

        return Part(1, groups.data, evaluate, fragile)

    def open_count(self, block: OpenCountBlock) -> Part | Fallback:
        """The number of weights above `OPEN_POSITION` in magnitude (exact: no sums)."""

        def evaluate(ops: Ops, data: tuple[Array, ...], W: Array) -> Array:
            xp = ops.xp
            return xp.sum(xp.abs(W) > OPEN_POSITION, axis=1, keepdims=True).astype(W.dtype)

        return Part(1, (), evaluate)

    def unsupported(self, block: Block) -> Part | Fallback:
        """Any other block: one vector at a time, through `values`."""
        return Fallback(block)

"""The pieces a `ViolationTracker` is made of: rows whose penalty follows single-weight moves.

A part owns some rows of the bounded row sets and keeps their penalty at the current
weights: per row `max(excess - TOLERANCE / 2, 0)`, the term
`engine.adjust.bounds.total_violation` sums. It answers what its penalty would become if one
weight moved (`trial`) and applies such a move (`commit`). The tracker asks only the parts
whose rows the moved weight reaches (`columns`).

`WholeBlock` serves any block: it re-evaluates the block's `values` in full for each move.
The cheaper parts (engine.adjust.rounding.tracked_linear,
engine.adjust.rounding.tracked_scalar) keep what lets them update in time proportional
to the entries one weight touches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypeVar

import numpy as np
import scipy.sparse as sp

from engine import tolerances
from engine.compile.blocks import Block
from models.typing import BoolArray, FloatArray, IntArray

__all__ = [
    "HALF_TOLERANCE",
    "Change",
    "TrackedPart",
    "WholeBlock",
    "by_column",
    "column_lists",
    "entries",
    "sign_of",
]

T = TypeVar("T")

HALF_TOLERANCE = tolerances.HALF_TOLERANCE
"""The slack `total_violation` grants each row before it counts its excess."""

Change = tuple[float, int]
"""The change of a part's penalty and of its number of rows with a positive penalty."""


def sign_of(sense: str) -> float:
    """+1 for rows bounded from above (excess = value - bound), -1 from below."""
    return 1.0 if sense == "le" else -1.0


def entries(matrix: FloatArray | sp.spmatrix) -> tuple[IntArray, IntArray, FloatArray]:
    """Row, column and value of every nonzero entry, duplicates summed, in row order.

    Read straight from the CSR arrays: scipy's conversions cost ~0.1 ms a matrix, more than
    the arithmetic, and a tracker is built per rounding.
    """
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
        columns = np.asarray(csr.indices, dtype=np.int64)
        values = np.asarray(csr.data, dtype=float)
    else:
        dense = np.atleast_2d(np.asarray(matrix, dtype=float))
        r, c = np.nonzero(dense)
        rows, columns, values = r.astype(np.int64), c.astype(np.int64), dense[r, c]
    keep = values != 0.0
    return rows[keep], columns[keep], values[keep]


def by_column(columns: IntArray, items: list[T], n: int) -> list[list[T]]:
    """`items` (one per entry, sorted by column) split into one list per column."""
    ends = np.cumsum(np.bincount(columns, minlength=n)).tolist()
    starts = [0, *ends[:-1]]
    return [items[a:b] for a, b in zip(starts, ends, strict=True)]


def column_lists(matrix: FloatArray | sp.spmatrix, n: int) -> list[list[tuple[int, float]]]:
    """Per column of `matrix` (`n` of them): its (row, value) nonzeros."""
    rows, columns, values = entries(matrix)
    order = np.argsort(columns, kind="stable")
    pairs = list(zip(rows[order].tolist(), values[order].tolist(), strict=True))
    return by_column(columns[order], pairs, n)


class TrackedPart(ABC):
    """Rows whose total penalty is kept current as single weights move.

    `penalty` is the sum of the rows' penalties and `positive` how many of them are
    positive; a part sets `penalty` to exactly 0.0 when `positive` drops to 0, so that
    small sums left over from adding and subtracting never read as a violation.
    """

    penalty: float = 0.0
    positive: int = 0

    @abstractmethod
    def columns(self, n: int) -> BoolArray:
        """Which of the `n` weights move at least one of the rows."""

    @abstractmethod
    def reset(self, w: FloatArray) -> None:
        """Recompute every row's state from the weights `w`, from scratch."""

    @abstractmethod
    def trial(self, i: int, old: float, new: float) -> Change:
        """The change if weight `i` moved from `old` to `new` (nothing is kept)."""

    @abstractmethod
    def commit(self, i: int, old: float, new: float) -> None:
        """Move weight `i` from `old` to `new`."""

    def _settle(self, penalty: float, positive: int) -> None:
        self.positive = positive
        self.penalty = penalty if positive else 0.0


class WholeBlock(TrackedPart):
    """Any block: each move re-evaluates the block's values at the moved weights.

    The fallback for block types without an incremental form (custom expressions, and any
    type added later): as costly per move as evaluating the block, but only that block.
    """

    def __init__(self, block: Block, sense: str, bound: FloatArray) -> None:
        self.block = block
        self.sign = sign_of(sense)
        self.bound = np.asarray(bound, dtype=float)
        self.w = np.zeros(0)

    def columns(self, n: int) -> BoolArray:
        """Every weight (the block's dependencies are not known in general)."""
        return np.ones(n, dtype=bool)

    def _penalties(self, w: FloatArray) -> tuple[float, int]:
        values = self.block.values(w)
        excess = values - self.bound if self.sign > 0 else self.bound - values
        penalties = np.clip(excess - HALF_TOLERANCE, 0.0, None)
        return float(penalties.sum()), int(np.count_nonzero(penalties))

    def reset(self, w: FloatArray) -> None:
        """Copy the weights and evaluate the block."""
        self.w = np.array(w, dtype=float)
        self._settle(*self._penalties(self.w))

    def trial(self, i: int, old: float, new: float) -> Change:
        """Evaluate the block with weight `i` at `new`, then put it back."""
        self.w[i] = new
        try:
            penalty, positive = self._penalties(self.w)
        finally:
            self.w[i] = old
        if not positive:
            penalty = 0.0
        return penalty - self.penalty, positive - self.positive

    def commit(self, i: int, old: float, new: float) -> None:
        """Keep weight `i` at `new`."""
        self.w[i] = new
        self._settle(*self._penalties(self.w))

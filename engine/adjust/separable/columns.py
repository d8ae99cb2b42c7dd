"""A row set's matrix restricted to some columns, as entries, in plain numpy.

`scale_back` restricts every row set to the traded names (~20 of n), which change with
every request, so nothing built from a restriction outlives its request. scipy's fancy
indexing spends 10-30 us per call on dispatch and format checks, several calls per row
set, far more than the few entries it moves. A `ColumnIndex` keeps a fixed matrix's
nonzeros grouped by column, built once per matrix; picking columns from it then costs a
few numpy calls. `Entries` hold a restriction's nonzeros row by row, and select rows and
renumber columns the way scipy's indexing would, so the sparse matrices built from them
are scipy's own (the same entries; within a row, the stored order may differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from models.typing import FloatArray

__all__ = ["ColumnIndex", "Entries", "IntArray", "column_index"]

IntArray = np.ndarray[Any, np.dtype[np.intp]]
AnyArray = np.ndarray[Any, Any]


@dataclass
class Entries:
    """A sparse matrix's nonzeros row by row: entry `e` is `data[e]` at `(rows[e], cols[e])`.

    Rows ascend; within a row, the entries keep the order they were given in.
    """

    rows: IntArray
    cols: IntArray
    data: AnyArray
    shape: tuple[int, int]

    @classmethod
    def of_csr(cls, csr: sp.csr_matrix) -> Entries:
        """The nonzeros of `csr` in its stored order (explicit zeros left out)."""
        stored = int(csr.indptr[-1])
        data = csr.data[:stored]
        rows = np.repeat(np.arange(csr.shape[0], dtype=np.intp), np.diff(csr.indptr))
        cols = csr.indices[:stored].astype(np.intp)
        keep = data != 0
        return cls(rows[keep], cols[keep], data[keep], (int(csr.shape[0]), int(csr.shape[1])))

    @classmethod
    def identity_columns(cls, n: int, columns: IntArray) -> Entries:
        """The columns `columns` (ascending) of the n x n identity."""
        picked = len(columns)
        return cls(columns, np.arange(picked, dtype=np.intp), np.ones(picked), (n, picked))

    def per_row(self) -> IntArray:
        """How many entries each row has."""
        return np.bincount(self.rows, minlength=self.shape[0]).astype(np.intp, copy=False)

    def first_of(self, rows: IntArray) -> tuple[IntArray, FloatArray]:
        """Column and value of the first entry of each of `rows` (each has one at least)."""
        first = np.searchsorted(self.rows, rows)
        return self.cols[first], np.asarray(self.data[first], dtype=float)

    def of_rows(self, chosen: IntArray) -> Entries:
        """The rows `chosen` (ascending), numbered 0, 1, ... in that order."""
        kept = np.zeros(self.shape[0], dtype=bool)
        kept[chosen] = True
        keep = kept[self.rows]
        renumbered = np.cumsum(kept) - 1
        return Entries(
            renumbered[self.rows[keep]].astype(np.intp),
            self.cols[keep],
            self.data[keep],
            (len(chosen), self.shape[1]),
        )

    def of_columns(self, used: IntArray) -> Entries:
        """The columns `used` (ascending; every entry's column among them), renumbered."""
        return Entries(
            self.rows,
            np.searchsorted(used, self.cols).astype(np.intp),
            self.data,
            (self.shape[0], len(used)),
        )

    def scaled(self, factor: float) -> Entries:
        """Every value times `factor` (numpy's promotion, as a sparse matrix times a scalar)."""
        return Entries(self.rows, self.cols, factor * self.data, self.shape)

    def csr(self) -> sp.csr_matrix:
        """The entries as a CSR matrix, in their order."""
        # int32 indices where they fit, which scipy would pick: its constructor then skips
        # scanning them for the narrowest type (about half its time).
        fits = max(*self.shape, len(self.rows)) <= np.iinfo(np.int32).max
        index_type = np.int32 if fits else np.intp
        indptr = np.zeros(self.shape[0] + 1, dtype=index_type)
        np.cumsum(np.bincount(self.rows, minlength=self.shape[0]), out=indptr[1:])
        return sp.csr_matrix((self.data, self.cols.astype(index_type), indptr), shape=self.shape)


class ColumnIndex:
    """A fixed matrix's nonzeros grouped by column, to pick a few columns in numpy.

    Build one with `ColumnIndex.of` (or `column_index`, which keeps it): None for a matrix
    with duplicate entries, whose restrictions scipy keeps entry by entry in stored order.
    """

    __slots__ = ("_data", "_rows", "_starts", "any_negative", "shape")

    def __init__(
        self, rows: IntArray, data: AnyArray, per_column: IntArray, shape: tuple[int, int]
    ) -> None:
        self._rows, self._data, self.shape = rows, data, shape
        self._starts = np.zeros(shape[1] + 1, dtype=np.intp)
        np.cumsum(per_column, out=self._starts[1:])
        self.any_negative = bool((data < 0).any())
        """True when some entry is negative."""

    @classmethod
    def of(cls, matrix: Any) -> ColumnIndex | None:
        """The index of `matrix`'s nonzeros, or None when it has duplicate entries."""
        whole = Entries.of_csr(sp.csr_matrix(matrix))
        by_column = np.lexsort((whole.rows, whole.cols))  # then by row
        rows, cols = whole.rows[by_column], whole.cols[by_column]
        if ((rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])).any():
            return None
        per_column = np.bincount(cols, minlength=whole.shape[1])
        return cls(rows, whole.data[by_column], per_column, whole.shape)

    def covers(self, columns: IntArray) -> bool:
        """True when every one of `columns` is a column (no negative index either)."""
        return not len(columns) or bool(columns.min() >= 0 and columns.max() < self.shape[1])

    def pick(self, columns: IntArray) -> Entries:
        """`matrix[:, columns]` without zeros: rows ascending, columns ascending in each."""
        starts = self._starts[columns]
        counts = self._starts[columns + 1] - starts
        new_cols = np.repeat(np.arange(len(columns), dtype=np.intp), counts)
        # Entry e (of all picked) in column j is stored at starts[j] + e - (j's first e).
        shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        at = np.arange(len(new_cols), dtype=np.intp) + shift
        rows = self._rows[at]
        by_row = np.argsort(rows, kind="stable")  # within a row, columns stay ascending
        return Entries(
            rows[by_row], new_cols[by_row], self._data[at[by_row]], (self.shape[0], len(columns))
        )


def column_index(owner: object, name: str) -> ColumnIndex | None:
    """The `ColumnIndex` of `owner`'s matrix `name`, kept on `owner` (one per name).

    Rebuilt when `name` holds another matrix: the index is matched to the matrix object,
    not to its contents, so only a matrix never changed in place (structural) may have one.
    """
    matrix = getattr(owner, name)
    kept: dict[str, tuple[Any, ColumnIndex | None]] = owner.__dict__.setdefault(
        "_column_indexes", {}
    )
    found = kept.get(name)
    if found is None or found[0] is not matrix:
        found = kept[name] = (matrix, ColumnIndex.of(matrix))
    return found[1]

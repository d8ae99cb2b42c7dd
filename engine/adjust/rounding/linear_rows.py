"""Bounded affine and absolute-sum row sets laid end to end, read by column.

What `engine.adjust.rounding.sweep` needs of the rows: every row's excess at some
weights, and how each row moves when single weights move. Moving weight `i` by `d` moves
an affine row by `a d` and an absolute term `u` by `c d`, which moves the rows holding the
term by `h (|u + c d| - |u|)`. The matrices are kept by column (`Columns`) for as long as
the layout keeps its blocks: the layout of a request is cached by structure
(`engine.compile.layout`), so the same blocks come back request after request and only
their bounds and offsets change.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from engine.adjust.rounding.tracked_linear import AbsSumMember, AffineMember, LinearMember
from engine.adjust.rounding.tracked_parts import HALF_TOLERANCE, entries, sign_of
from engine.adjust.rounding.tracker import linear_members
from engine.compile.blocks import Block
from engine.compile.layout import Layout
from models.typing import FloatArray, IntArray

__all__ = ["Columns", "LinearRows", "Moves"]


@dataclass
class Moves:
    """How rows move when single weights move, one entry per (trade, row) pair.

    `trade` is the mover's position in the order, `low` and `high` the row's excess change
    under the mover's lower and upper option.
    """

    trade: IntArray
    row: IntArray
    low: FloatArray
    high: FloatArray


@dataclass
class Columns:
    """A matrix by column (compressed sparse column arrays, no explicit zeros)."""

    indptr: IntArray
    index: IntArray
    data: FloatArray

    @classmethod
    def of(cls, matrix: FloatArray | sp.spmatrix, sign: float = 1.0, shift: int = 0) -> Columns:
        """The columns of `sign * matrix`, row numbers moved by `shift`."""
        r, c, v = entries(matrix)
        n = int(np.shape(matrix)[1])
        order = np.lexsort((r, c))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(c, minlength=n))]).astype(np.int64)
        return cls(indptr, r[order] + shift, sign * v[order])

    @classmethod
    def stacked(cls, parts: Sequence[Columns], n: int) -> Columns:
        """The parts (over the same `n` columns) side by side in each column."""
        if not parts:
            return cls(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0))
        counts = sum(np.diff(p.indptr) for p in parts)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        column = np.concatenate([np.repeat(np.arange(n), np.diff(p.indptr)) for p in parts])
        order = np.argsort(column, kind="stable")
        index = np.concatenate([p.index for p in parts])[order]
        data = np.concatenate([p.data for p in parts])[order]
        return cls(indptr, index, data)

    def gather(self, cols: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """(position in `cols`, row, value) of every entry in the columns `cols`."""
        starts = self.indptr[cols]
        counts = self.indptr[cols + 1] - starts
        position = np.repeat(np.arange(len(cols)), counts)
        at = np.arange(len(position)) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return position, self.index[at], self.data[at]


@dataclass
class _AbsTerms:
    """One absolute-sum row set: its terms by column, and per term the (signed) rows."""

    member: AbsSumMember
    terms: Columns
    rows_of_term: Columns


class _Structure:
    """What the sweep reads from the row sets' matrices, kept while their blocks stay.

    The layout of a request is cached by structure (`engine.compile.layout`), so the
    same blocks come back request after request; only their bounds and offsets change.
    """

    def __init__(self, members: Sequence[LinearMember], n: int) -> None:
        self.blocks = [m.block for m in members]
        self.matrices = [_matrices(m.block) for m in members]
        affine: list[Columns] = []
        self.absolute: list[_AbsTerms] = []
        row = 0
        for member in members:
            sign = sign_of(member.sense)
            if isinstance(member, AbsSumMember):
                block = member.block
                terms = int(np.shape(block.A)[0])
                G = sp.identity(terms, format="csr") if block.G is None else block.G
                spread = Columns.of(sp.csr_matrix(G), sign, row)
                self.absolute.append(_AbsTerms(member, Columns.of(block.A), spread))
            elif isinstance(member, AffineMember):
                affine.append(Columns.of(member.block.A, sign, row))
            row += member.block.rows
        self.affine = Columns.stacked(affine, n)

    def serves(self, members: Sequence[LinearMember]) -> bool:
        """True when `members` are the same blocks with the same matrices."""
        return len(members) == len(self.blocks) and all(
            m.block is b and _same(_matrices(m.block), kept)
            for m, b, kept in zip(members, self.blocks, self.matrices, strict=True)
        )


_STRUCTURES: dict[tuple[int, tuple[tuple[int, str], ...]], _Structure] = {}
_KEEP = 32
"""Structures kept (the oldest goes first); a kept one holds its blocks alive."""
_LOCK = threading.Lock()


def _matrices(block: Block) -> tuple[object, ...]:
    return (getattr(block, "A", None), getattr(block, "G", None))


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return all(x is y for x, y in zip(a, b, strict=True))


def _structure(members: Sequence[LinearMember], n: int) -> _Structure:
    key = (n, tuple((id(m.block), m.sense) for m in members))
    with _LOCK:
        found = _STRUCTURES.get(key)
        if found is not None and found.serves(members):
            return found
    built = _Structure(members, n)
    with _LOCK:
        while len(_STRUCTURES) >= _KEEP:
            _STRUCTURES.pop(next(iter(_STRUCTURES)))
        _STRUCTURES[key] = built
    return built


class LinearRows:
    """Bounded affine and absolute-sum row sets laid end to end, for `sweep`.

    `members` are the tracker's (`engine.adjust.rounding.tracker.linear_members`): each
    row's excess is `s (v - bound) - TOLERANCE / 2`, its penalty the positive part, the
    total as `engine.adjust.bounds.total_violation` sums it.
    """

    def __init__(self, members: Sequence[LinearMember], n: int) -> None:
        self.members = list(members)
        self.n = n

    @classmethod
    def of(
        cls, layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]
    ) -> LinearRows | None:
        """The row sets `indices` with their `bounds`; None when one is not linear."""
        members = linear_members(layout, indices, bounds)
        return None if members is None else cls(members, layout.snap.n)

    def excess(self, w: FloatArray) -> FloatArray:
        """Every row's signed excess less half the tolerance, at the weights `w`."""
        parts = [
            sign_of(m.sense) * (m.block.values(w) - m.bound) - HALF_TOLERANCE for m in self.members
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def total(self, w: FloatArray) -> float:
        """The total violation at `w` (exactly 0.0 when no row is past its bound)."""
        excess = self.excess(w)
        positive = excess > 0.0
        return float(excess[positive].sum()) if positive.any() else 0.0

    def moves(
        self,
        w: FloatArray,
        cols: IntArray,
        d_low: FloatArray,
        d_high: FloatArray,
        *,
        alone: bool = False,
    ) -> Moves | None:
        """Every row's change when weight `cols[k]` moves by `d_low[k]` or by `d_high[k]`.

        The trades are positions in `cols`. The changes are those of trades made one
        after another, and None when two of them move one absolute term (its change would
        depend on the order); with `alone`, of each trade made alone from `w`.
        """
        structure = _structure(self.members, self.n)
        moving = (d_low != 0.0) | (d_high != 0.0)
        if not moving.all():
            cols, d_low, d_high = cols[moving], d_low[moving], d_high[moving]
        where = np.flatnonzero(moving)
        k, r, a = structure.affine.gather(cols)
        found = [Moves(k, r, a * d_low[k], a * d_high[k])]
        for absolute in structure.absolute:
            term_moves = _term_moves(absolute, w, cols, d_low, d_high, alone=alone)
            if term_moves is None:
                return None
            found.append(term_moves)
        return Moves(
            where[np.concatenate([f.trade for f in found])],
            np.concatenate([f.row for f in found]),
            np.concatenate([f.low for f in found]),
            np.concatenate([f.high for f in found]),
        )


def _term_moves(
    absolute: _AbsTerms,
    w: FloatArray,
    cols: IntArray,
    d_low: FloatArray,
    d_high: FloatArray,
    *,
    alone: bool,
) -> Moves | None:
    """`h (|u + c d| - |u|)` per (trade, row).

    None when two trades move one term, unless each trade is made `alone`.
    """
    k, j, coefficient = absolute.terms.gather(cols)
    if not alone and len(j) and np.bincount(j).max() > 1:
        return None
    u = absolute.member.terms(w)[j]
    change_low = np.abs(u + coefficient * d_low[k]) - np.abs(u)
    change_high = np.abs(u + coefficient * d_high[k]) - np.abs(u)
    at, row, h = absolute.rows_of_term.gather(j)
    trade, low, high = k[at], h * change_low[at], h * change_high[at]
    if len(k) < 2 or (k[1:] != k[:-1]).all():
        return Moves(trade, row, low, high)  # one term a trade: one pair a (trade, row)
    # A trade moving several terms of one row: one pair, the changes summed.
    order = np.lexsort((row, trade))
    trade, row = trade[order], row[order]
    first = np.concatenate([[True], (trade[1:] != trade[:-1]) | (row[1:] != row[:-1])])
    starts = np.flatnonzero(first)
    return Moves(
        trade[starts],
        row[starts],
        np.add.reduceat(low[order], starts),
        np.add.reduceat(high[order], starts),
    )

"""Affine and absolute-sum rows, all blocks of both kinds kept as one part.

An `AffineBlock` row is `v = A w + c`; an `AbsSumBlock` row is `v = G |u| + k` over terms
`u = A w + c`. Moving weight `i` by `d` moves an affine row by `A[r, i] d` and a term by
`A[j, i] d`, and a term's change reaches the rows of `G` that hold it. These matrices have a
handful of entries per column (one per block, in the common kinds), so one move touches a
handful of rows: the entries are kept per column as Python lists and a move walks them in
plain Python, which at that size costs far less than any numpy call.

Each row keeps its signed excess less half the tolerance, `s (v - bound) - TOLERANCE / 2`
(`s` = +1 for "le", -1 for "ge"), so its penalty is just the positive part.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from engine.adjust.rounding.tracked_parts import (
    HALF_TOLERANCE,
    Change,
    TrackedPart,
    by_column,
    entries,
    sign_of,
)
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["AbsSumMember", "AffineMember", "LinearMember", "LinearTracker"]

Entries = tuple[IntArray, IntArray, FloatArray]
"""Row (or term), column and value of a matrix's nonzero entries."""

Step = tuple[int, float, float, int, bool]
"""One pair of a column's walk: term, its coefficient, G entry, row, last pair of the row."""


class LinearMember(ABC):
    """One row set of `LinearTracker`: its block, sense and bounds, and how its rows move."""

    block: Block

    def __init__(self, sense: str, bound: FloatArray) -> None:
        self.sense = sense
        self.bound = bound

    @abstractmethod
    def add_entries(
        self,
        row: int,
        term: int,
        affine: list[Entries],
        moves: list[Entries],
        spread: list[Entries],
    ) -> int:
        """Append the entries of the rows from `row` on (and terms from `term` on).

        `affine`: (row, column, signed coefficient); `moves`: (term, column, coefficient);
        `spread`: (row, term, signed G entry). Returns the number of terms added.
        """

    def terms(self, w: FloatArray) -> FloatArray | None:
        """The absolute terms at `w` (None: no terms)."""
        return None


class AffineMember(LinearMember):
    """`v = A w + c`: weight `i` moves row `r` by `A[r, i]` per unit."""

    def __init__(self, block: AffineBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(sense, bound)
        self.block: AffineBlock = block

    def add_entries(
        self,
        row: int,
        term: int,
        affine: list[Entries],
        moves: list[Entries],
        spread: list[Entries],
    ) -> int:
        """The rows' coefficients, signed by the sense."""
        r, c, v = entries(self.block.A)
        affine.append((r + row, c, sign_of(self.sense) * v))
        return 0


class AbsSumMember(LinearMember):
    """`v = G |u| + k`, `u = A w + c`: weight `i` moves term `j` by `A[j, i]` per unit."""

    def __init__(self, block: AbsSumBlock, sense: str, bound: FloatArray) -> None:
        super().__init__(sense, bound)
        self.block: AbsSumBlock = block

    def add_entries(
        self,
        row: int,
        term: int,
        affine: list[Entries],
        moves: list[Entries],
        spread: list[Entries],
    ) -> int:
        """The terms' coefficients, and each row's (signed) G entries over its terms."""
        block, sign = self.block, sign_of(self.sense)
        j, c, v = entries(block.A)
        moves.append((j + term, c, v))
        terms = int(np.shape(block.A)[0])
        if block.G is None:
            held = np.arange(terms)
            spread.append((held + row, held + term, np.full(terms, sign)))
        else:
            r, j, g = entries(block.G)
            spread.append((r + row, j + term, sign * g))
        return terms

    def terms(self, w: FloatArray) -> FloatArray:
        """`A w + c`."""
        return np.asarray(self.block.A @ w, dtype=float).ravel() + self.block.c


class LinearTracker(TrackedPart):
    """Every row of the given affine and absolute-sum row sets, laid end to end."""

    def __init__(self, members: Sequence[LinearMember], n: int) -> None:
        self.members = list(members)
        self.n = n
        self.excess: list[float] = []
        self.terms: list[float] = []
        affine: list[Entries] = []
        moves: list[Entries] = []
        spread: list[Entries] = []
        row, term = 0, 0
        for member in self.members:
            term += member.add_entries(row, term, affine, moves, spread)
            row += member.block.rows
        self.affine = self._affine_columns(affine)
        self.absolute, self.moves = self._absolute_columns(moves, spread, term)

    def _affine_columns(self, parts: list[Entries]) -> list[list[tuple[int, float]]]:
        """Per column: (row, signed coefficient)."""
        rows, columns, values = _concatenated(parts)
        order = np.argsort(columns, kind="stable")
        items = list(zip(rows[order].tolist(), values[order].tolist(), strict=True))
        return by_column(columns[order], items, self.n)

    def _absolute_columns(
        self,
        moves: list[Entries],
        spread: list[Entries],
        n_terms: int,
    ) -> tuple[list[list[Step]], list[list[tuple[int, float]]]]:
        """Per column: the (term, coefficient, G entry, row, last) walk and the term moves.

        The walk pairs each term the column moves with each row holding that term, sorted
        by row; `last` marks the final pair of a row, where the row's change is complete.
        """
        term_of, column_of, coefficient = _concatenated(moves)
        held_row, held_term, held = _concatenated(spread)
        # Every (term entry, G entry) pair sharing a term.
        by_term = np.argsort(held_term, kind="stable")
        counts = np.bincount(held_term, minlength=n_terms)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        per_entry = counts[term_of]
        entry = np.repeat(np.arange(len(term_of)), per_entry)
        within = np.arange(len(entry)) - np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
        pick = by_term[first[term_of[entry]] + within]
        column, row = column_of[entry], held_row[pick]
        order = np.lexsort((row, column))
        column, row = column[order], row[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = (column[1:] != column[:-1]) | (row[1:] != row[:-1])
        walk = list(
            zip(
                term_of[entry][order].tolist(),
                coefficient[entry][order].tolist(),
                held[pick][order].tolist(),
                row.tolist(),
                last.tolist(),
                strict=True,
            )
        )
        move_order = np.argsort(column_of, kind="stable")
        term_moves = list(
            zip(term_of[move_order].tolist(), coefficient[move_order].tolist(), strict=True)
        )
        return by_column(column, walk, self.n), by_column(column_of[move_order], term_moves, self.n)

    def columns(self, n: int) -> BoolArray:
        """The weights with an entry in some row or term."""
        return np.array([bool(a or b) for a, b in zip(self.affine, self.moves, strict=True)])

    def reset(self, w: FloatArray) -> None:
        """Every row's signed excess and every term, from the blocks' own arithmetic."""
        excess: list[FloatArray] = []
        terms: list[FloatArray] = []
        for member in self.members:
            values = member.block.values(w)
            excess.append(sign_of(member.sense) * (values - member.bound) - HALF_TOLERANCE)
            moved = member.terms(w)
            if moved is not None:
                terms.append(moved)
        stacked = np.concatenate(excess) if excess else np.zeros(0)
        self.excess = stacked.tolist()
        self.terms = np.concatenate(terms).tolist() if terms else []
        positive = stacked > 0.0
        self._settle(float(stacked[positive].sum()), int(np.count_nonzero(positive)))

    def trial(self, i: int, old: float, new: float) -> Change:
        """Walk column `i`: the affine rows it moves, then the absolute terms and their rows.

        The row update (excess before and after, into penalty and count) is written out in
        both loops rather than called: this is the innermost loop of lot rounding (a few
        times per trade rounded), where a Python call per row would cost more than the row.
        """
        d = new - old
        excess = self.excess
        penalty = 0.0
        positive = 0
        for r, a in self.affine[i]:
            before = excess[r]
            after = before + a * d
            if after > 0.0:
                penalty += after
                positive += 1
            if before > 0.0:
                penalty -= before
                positive -= 1
        terms = self.terms
        change = 0.0
        for j, c, h, r, last in self.absolute[i]:
            u = terms[j]
            change += h * (abs(u + c * d) - abs(u))
            if last:
                before = excess[r]
                after = before + change
                change = 0.0
                if after > 0.0:
                    penalty += after
                    positive += 1
                if before > 0.0:
                    penalty -= before
                    positive -= 1
        return penalty, positive

    def commit(self, i: int, old: float, new: float) -> None:
        """Apply the moves `trial` computes to the rows and the terms."""
        penalty, positive = self.trial(i, old, new)
        d = new - old
        excess = self.excess
        for r, a in self.affine[i]:
            excess[r] += a * d
        terms = self.terms
        change = 0.0
        for j, c, h, r, last in self.absolute[i]:
            u = terms[j]
            change += h * (abs(u + c * d) - abs(u))
            if last:
                excess[r] += change
                change = 0.0
        for j, c in self.moves[i]:
            terms[j] += c * d
        self._settle(self.penalty + penalty, self.positive + positive)


def _concatenated(parts: list[Entries]) -> Entries:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    first, second, values = zip(*parts, strict=True)
    return np.concatenate(first), np.concatenate(second), np.concatenate(values)

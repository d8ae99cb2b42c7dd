"""Risk norms capped from above, read as `engine.adjust.rounding.sweep` needs them.

A `NormBlock` row is `v = s sqrt(|F'y|^2 + |d y|^2)`, `y = P w + c`. Moving weight `i` by
`delta` adds `delta m_i` to the factor exposures `e = F'y` (`m_i` is row `i` of `P'F`)
and changes the specific sum `|d y|^2` on the names `P e_i` reaches, so

    |e + delta m_i|^2 = |e|^2 + delta (2 e.m_i + delta |m_i|^2).

A trade's effect on the specific sum is known beforehand when no other trade reaches its
names (`P` maps each holding to its own name in the risk universe); its effect on the
exposures depends on the trades rounded before it, through `e`: the sweep's loop keeps `e`
(`LiveNorm`). A norm that no sequence of choices can push past its bound, by the triangle
inequality (`|L (y + Y)| <= |L y| + sum_i |delta_i| |L P e_i|`, `L = [F'; diag(d)]`), never
counts and is not followed.

What a request reads of a block's matrices (`P'F`, `P` by column) is kept while the layout
keeps the block, as `engine.adjust.rounding.linear_rows` keeps the linear rows' columns.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator, Sequence
from operator import mul

import numpy as np
import scipy.sparse as sp

from engine.adjust.rounding.linear_rows import Columns
from engine.adjust.rounding.lots import SCORE_EPS
from engine.adjust.rounding.tracked_parts import HALF_TOLERANCE
from engine.compile.conic_blocks import NormBlock
from models.typing import FloatArray, IntArray

__all__ = ["LiveNorm", "NormRows", "norm_gradient"]

_Change = tuple[FloatArray, IntArray]
"""Per trade, the change of the rows' penalty and of how many are positive."""


BLOCK = 16
"""Trades between two numpy updates of a followed norm's exposures (`LiveNorm`)."""

_QUIET_MARGIN = 1e-12
"""Relative margin of `LiveNorm`'s test for a zero penalty, far above rounding error."""


class LiveNorm:
    """One norm row as the sweep's loop follows it, over the trades in rounding order.

    `follow` answers, trade after trade (its position `k` in the order), the row's
    penalty under the upper option less under the lower, given the trades before it as
    chosen, and takes the choice. The penalty is the excess over `bound` less half the
    tolerance, the value as the tracker computes it
    (`engine.adjust.rounding.tracked_scalar.NormTracker`):
    `s sqrt(|e|^2 + delta (2 e.m_k + delta |m_k|^2) + specific)`, with `|e|^2` carried
    from move to move by that formula (the tracker recomputes it from `e`: the two differ
    by rounding, ~1e-16 of the value, far below `SCORE_EPS`).

    The term `e.m_k` is where the trades before come in. Keeping `e` current costs a
    k-long update per trade in Python; instead the trades go in blocks of `BLOCK`: at a
    block's start numpy brings `e` up to date and takes `e.m_j` for the whole block, and
    within the block `e.m_k` adds the block's earlier moves through their products
    `m_j.m_k`, taken for every block at once beforehand.
    """

    def __init__(
        self,
        *,
        scale: float,
        bound: float,
        exposures: FloatArray,
        specific: float,
        moves: FloatArray,
        d_low: FloatArray,
        d_high: FloatArray,
        specific_low: FloatArray,
        specific_high: FloatArray,
    ) -> None:
        self.scale, self.bound = scale, bound
        self.exposures, self.specific = exposures, specific
        self.moves = moves
        m, factors = moves.shape
        blocks = -(-m // BLOCK)
        padded = np.zeros((blocks * BLOCK, factors))
        padded[:m] = moves
        padded = padded.reshape(blocks, BLOCK, factors)
        # Row k: m_k . m_j for every j of k's block.
        pairs = np.matmul(padded, padded.transpose(0, 2, 1)).reshape(-1, BLOCK)[:m].tolist()
        move_sq = np.einsum("ij,ij->i", moves, moves).tolist()
        self.trades = list(
            zip(
                move_sq,
                d_low.tolist(),
                d_high.tolist(),
                specific_low.tolist(),
                specific_high.tolist(),
                pairs,
                strict=True,
            )
        )

    def follow(self) -> Generator[float, bool, None]:
        """Per trade in order, its gap (upper less lower option); send back the choice.

        After the last trade's choice it answers 0.0.
        """
        scale, bound = self.scale, self.bound
        exposures, moves = self.exposures, self.moves
        exposure_sq, specific = float(exposures @ exposures), self.specific
        # Below `quiet`, `|e|^2 + specific` gives a zero penalty: compared in squares, a
        # hair inside the comparison of values, so that no rounding difference counts.
        limit = bound + HALF_TOLERANCE
        quiet = (limit / scale) ** 2 * (1.0 - _QUIET_MARGIN) if limit > 0 < scale else -np.inf
        along: list[float] = []  # e.m_j at the block's start, for its trades
        steps: list[float] = []  # the block's weight changes so far
        for k, (move_sq, d_low, d_high, low_change, high_change, pairs) in enumerate(self.trades):
            at = k % BLOCK
            if at == 0:
                if steps:
                    exposures = exposures + moves[k - BLOCK : k].T @ np.array(steps)
                along = (moves[k : k + BLOCK] @ exposures).tolist()
                steps = []
            along2 = 2.0 * (along[at] + sum(map(mul, steps, pairs)))
            low_sq = exposure_sq + d_low * (along2 + d_low * move_sq)
            low = specific + low_change
            high_sq = exposure_sq + d_high * (along2 + d_high * move_sq)
            high = specific + high_change
            if low_sq + low < quiet and high_sq + high < quiet:
                gap = 0.0
            else:
                # As the tracker: the value, then its excess over the bound less half the
                # tolerance, clipped at zero.
                low_excess = scale * math.sqrt(max(low_sq + low, 0.0)) - bound - HALF_TOLERANCE
                high_excess = scale * math.sqrt(max(high_sq + high, 0.0)) - bound - HALF_TOLERANCE
                gap = max(high_excess, 0.0) - max(low_excess, 0.0)
            if (yield gap):
                steps.append(d_high)
                exposure_sq, specific = high_sq, high
            else:
                steps.append(d_low)
                exposure_sq, specific = low_sq, low
        yield 0.0


class _Structure:
    """What the sweep reads of one block's matrices: `P'F`, `|m_i|^2`, `P` by column."""

    def __init__(self, block: NormBlock) -> None:
        self.block = block
        self.matrices = (block.P, block.F, block.d)
        self.moves = np.ascontiguousarray(sp.csc_matrix(block.P).T @ block.F, dtype=float)
        self.move_sq = np.einsum("ij,ij->i", self.moves, self.moves)
        self.names = Columns.of(block.P)
        self.specific_sq = None if block.d is None else np.asarray(block.d, dtype=float) ** 2
        # |L P e_i|: how fast weight i can move the row's value (before the scale).
        spread = self.move_sq.copy()
        if self.specific_sq is not None:
            n = len(spread)
            column = np.repeat(np.arange(n), np.diff(self.names.indptr))
            weighted = self.specific_sq[self.names.index] * self.names.data**2
            spread += np.bincount(column, weighted, minlength=n)
        self.reach = np.sqrt(spread)

    def serves(self, block: NormBlock) -> bool:
        """True when `block` is the block read, with the same matrices."""
        kept = (block.P, block.F, block.d)
        return block is self.block and all(a is b for a, b in zip(kept, self.matrices, strict=True))


_STRUCTURES: dict[int, _Structure] = {}
_KEEP = 32
"""Structures kept (the oldest goes first); a kept one holds its block alive."""
_LOCK = threading.Lock()


def _structure(block: NormBlock) -> _Structure:
    with _LOCK:
        found = _STRUCTURES.get(id(block))
        if found is not None and found.serves(block):
            return found
    built = _Structure(block)
    with _LOCK:
        while len(_STRUCTURES) >= _KEEP:
            _STRUCTURES.pop(next(iter(_STRUCTURES)))
        _STRUCTURES[id(block)] = built
    return built


class NormRows:
    """Norm row sets bounded from above, with their bounds (one row each)."""

    def __init__(self, norms: Sequence[tuple[NormBlock, FloatArray]]) -> None:
        self.norms = [(block, float(np.asarray(bound, dtype=float)[0])) for block, bound in norms]

    def total(self, w: FloatArray) -> float:
        """The rows' part of the total violation at `w` (as `total_violation` sums it)."""
        excess = [float(block.values(w)[0]) - bound - HALF_TOLERANCE for block, bound in self.norms]
        return sum(e for e in excess if e > 0.0)

    def alone(
        self, w: FloatArray, cols: IntArray, d_low: FloatArray, d_high: FloatArray
    ) -> tuple[float, int, tuple[_Change, _Change]]:
        """The rows' penalty at `w`, how many are positive, and each trade's change alone.

        Trade `k` moves weight `cols[k]` by `d_low[k]` or by `d_high[k]`, from `w`; per
        option the change of the penalty and of the number of positive rows, as the
        tracker's trial computes them.
        """
        m = len(cols)
        penalty, positive = 0.0, 0
        changes = tuple((np.zeros(m), np.zeros(m, dtype=np.int64)) for _ in range(2))
        for block, bound in self.norms:
            structure = _structure(block)
            y = np.asarray(block.P @ w, dtype=float).ravel() + block.c
            exposures = np.asarray(block.F.T @ y, dtype=float)
            exposure_sq = float(exposures @ exposures)
            specific = 0.0 if block.d is None else float(np.sum((block.d * y) ** 2))
            now = max(float(block.values(w)[0]) - bound - HALF_TOLERANCE, 0.0)
            penalty, positive = penalty + now, positive + int(now > 0.0)
            along2 = 2.0 * (structure.moves[cols] @ exposures)
            move_sq = structure.move_sq[cols]
            moved = _specific_changes(structure, y, cols, d_low, d_high, alone=True)
            assert moved is not None  # never None alone
            for d, specific_change, (change, count) in zip(
                (d_low, d_high), moved, changes, strict=True
            ):
                exposure_after = exposure_sq + d * (along2 + d * move_sq)
                value = block.scale * np.sqrt(
                    np.maximum(exposure_after + (specific + specific_change), 0.0)
                )
                after = np.maximum(value - bound - HALF_TOLERANCE, 0.0)
                change += after - now
                count += (after > 0.0).astype(np.int64) - int(now > 0.0)
        return penalty, positive, (changes[0], changes[1])

    def live(
        self, w: FloatArray, cols: IntArray, d_low: FloatArray, d_high: FloatArray
    ) -> list[LiveNorm] | None:
        """The rows some rounding of the trades `cols` can push past their bound, from `w`.

        Trade `k` moves weight `cols[k]` by `d_low[k]` or `d_high[k]`. None when two of
        the trades reach one name of a risk universe (the specific sum's change under one
        would depend on the other).
        """
        out: list[LiveNorm] = []
        for block, bound in self.norms:
            structure = _structure(block)
            y = np.asarray(block.P @ w, dtype=float).ravel() + block.c
            exposures = np.asarray(block.F.T @ y, dtype=float)
            specific = 0.0 if block.d is None else float(np.sum((block.d * y) ** 2))
            value = block.scale * math.sqrt(max(float(exposures @ exposures) + specific, 0.0))
            largest = np.maximum(np.abs(d_low), np.abs(d_high))
            rise = block.scale * float(largest @ structure.reach[cols])
            if value + rise + SCORE_EPS <= bound + HALF_TOLERANCE:
                continue  # no rounding reaches the bound
            changes = _specific_changes(structure, y, cols, d_low, d_high, alone=False)
            if changes is None:
                return None
            out.append(
                LiveNorm(
                    scale=float(block.scale),
                    bound=bound,
                    exposures=exposures,
                    specific=specific,
                    moves=structure.moves[cols],
                    d_low=d_low,
                    d_high=d_high,
                    specific_low=changes[0],
                    specific_high=changes[1],
                )
            )
        return out


def norm_gradient(
    block: NormBlock, w: FloatArray, cols: IntArray
) -> tuple[float, float, float, FloatArray, FloatArray]:
    """The row at `w`: its value `s |L y|`, `s`, `|L y|`, and two arrays over `cols`.

    Per weight `cols[k]`: `(L y).(L P e_k)` (the value's slope is `s` times it over
    `|L y|`) and `|L P e_k|` (how fast that weight moves `L y`).
    """
    structure = _structure(block)
    y = np.asarray(block.P @ w, dtype=float).ravel() + block.c
    exposures = np.asarray(block.F.T @ y, dtype=float)
    slope = structure.moves[cols] @ exposures
    radius_sq = float(exposures @ exposures)
    if structure.specific_sq is not None:
        k, j, p = structure.names.gather(cols)
        slope = slope + np.bincount(k, structure.specific_sq[j] * y[j] * p, minlength=len(cols))
        radius_sq += float(np.sum(structure.specific_sq * y**2))
    radius = math.sqrt(max(radius_sq, 0.0))
    scale = float(block.scale)
    return scale * radius, scale, radius, slope, structure.reach[cols]


def _specific_changes(
    structure: _Structure,
    y: FloatArray,
    cols: IntArray,
    d_low: FloatArray,
    d_high: FloatArray,
    *,
    alone: bool,
) -> tuple[FloatArray, FloatArray] | None:
    """Per trade, `|d y|^2`'s change under each option.

    None when two trades reach one name, unless each trade is made `alone` from `y`.
    """
    m = len(cols)
    if structure.specific_sq is None:
        return np.zeros(m), np.zeros(m)
    k, j, p = structure.names.gather(cols)
    if not alone and len(j) and np.bincount(j).max() > 1:
        return None
    sq, at = structure.specific_sq[j], y[j]
    low = sq * ((at + p * d_low[k]) ** 2 - at**2)
    high = sq * ((at + p * d_high[k]) ** 2 - at**2)
    by_trade: tuple[FloatArray, FloatArray] = (
        np.bincount(k, low, minlength=m).astype(float),
        np.bincount(k, high, minlength=m).astype(float),
    )
    return by_trade

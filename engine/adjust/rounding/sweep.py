"""Sequential rounding over linear rows and risk norms: the set-up in numpy, one short loop.

`engine.adjust.rounding.lots.sequential_rounding` rounds one trade at a time to the lot
below or above, whichever breaks the limits least given the trades rounded before it; its
tracker pays a few Python calls for every row a trial reaches. When every bounded row set
is affine or a sum of absolute values (`LinearRows`), or a risk norm capped from above
(`NormRows`), most of that work does not depend on the order in which the trades are
rounded:

- each option of each trade moves each row by `a d` (affine) or `h (|u + c d| - |u|)`
  (a term `u` that only this trade moves, as every per-name term), known beforehand;
- a row that only one trade moves (its name's cap, its turnover term) changes only when
  that trade is rounded, so its penalty change under each option is known beforehand too;
- a row that no sequence of choices can push past its bound never counts (for a norm, by
  the triangle inequality).

The loop keeps only the rows several trades move that may still break (the cash floor,
turnover, a sector at its cap): a few numbers per trade; and a norm that may break, whose
value under each option depends on every trade before (`LiveNorm`: its factor exposures,
brought up to date in blocks). It makes the choices of `sequential_rounding`: that
compares two totals after the move, which differ by the change on the rows the trade
moves; here that difference is computed directly (the totals add the same rounding-level
noise to both, ~1e-16 of the total, far below `SCORE_EPS`), and
`tests/engine/adjust/test_sweep.py` holds the two together. A term that two trades move
(an absolute value of a group's weight), or a norm's risk-universe name two trades reach,
is not served: `sweep` answers None and the caller rounds through the general tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.adjust.rounding.linear_rows import LinearRows, Moves
from engine.adjust.rounding.lots import SCORE_EPS
from engine.adjust.rounding.norm_rows import LiveNorm, NormRows
from engine.tolerances import LOT_UNITS_SNAP
from engine.weights.portfolio import Snapshot
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["sweep"]


@dataclass
class _Options:
    """The trades to round, in order (`columns`), and their lower and upper option.

    A trade with one option has it in both; `nearer_high` is True where the upper option
    is strictly nearer the current trade (never for a trade with one option).
    """

    columns: IntArray
    low: FloatArray
    high: FloatArray
    nearer_high: BoolArray


def sweep(
    rows: LinearRows,
    snap: Snapshot,
    t: FloatArray,
    *,
    shrink_only: bool,
    norms: NormRows | None = None,
) -> FloatArray | None:
    """`sequential_rounding(snap, t, ...)` over `rows` and `norms`.

    None when two trades move one absolute term or reach one name of a norm's risk
    universe.
    """
    options = _options(snap, t, shrink_only=shrink_only)
    out = np.array(t, dtype=float)
    if len(options.columns) == 0:
        return out
    w = snap.weights_from_trades(out)
    cols = options.columns
    start = w[cols]
    d_low = (snap.q[cols] + options.low) * snap.prices[cols] / snap.nav - start
    d_high = (snap.q[cols] + options.high) * snap.prices[cols] / snap.nav - start
    moves = rows.moves(w, cols, d_low, d_high)
    if moves is None:
        return None
    live = [] if norms is None else norms.live(w, cols, d_low, d_high)
    if live is None:
        return None
    high = _choose(options, moves, rows.excess(w), live)
    out[cols] = np.where(high, options.high, options.low)
    return out


def _options(snap: Snapshot, t: FloatArray, *, shrink_only: bool) -> _Options:
    """The trades `sequential_rounding` rounds, largest lot value first, and their options."""
    order = np.argsort(-(snap.lots * snap.prices), kind="stable")
    lots = snap.lots[order]
    current = np.asarray(t, dtype=float)[order]
    keep = (lots > 0) & (current != snap.t[order]) & (current != -snap.q[order])
    cols, current, lots = order[keep], current[keep], lots[keep]
    units = current / lots
    low = np.floor(units + LOT_UNITS_SNAP) * lots
    high = np.ceil(units - LOT_UNITS_SNAP) * lots
    if shrink_only:
        proposed = snap.t[cols]
        ok_low = (np.abs(low) <= np.abs(proposed)) & (low * proposed >= 0)
        ok_high = (np.abs(high) <= np.abs(proposed)) & (high * proposed >= 0)
        low, high = (
            np.where(ok_low, low, np.where(ok_high, high, 0.0)),
            np.where(ok_high, high, np.where(ok_low, low, 0.0)),
        )
    nearer_high = (low != high) & (np.abs(high - current) < np.abs(low - current))
    return _Options(cols, low, high, nearer_high)


def _choose(
    options: _Options, moves: Moves, excess: FloatArray, norms: Sequence[LiveNorm]
) -> BoolArray:
    """Per trade in order, True where it takes its upper option.

    Both options' scores share the penalty of every row the trade does not move, so the
    choice rests on the difference of the rows it moves: under the upper option less under
    the lower (`gap`). Rows only this trade moves give their part at once, for every
    trade; rows no sequence of choices can push past their bound give none; the loop
    (`_walk`) adds the rest, as the earlier trades left them. A norm row that may break
    (`norms`) is moved by every trade: then every trade is walked.
    """
    m = len(options.columns)
    trade, row, low, high = moves.trade, moves.row, moves.low, moves.high
    before = excess[row]
    one = np.bincount(row, minlength=len(excess))[row] == 1
    gap = np.maximum(before + high, 0.0) - np.maximum(before + low, 0.0)
    own = np.asarray(np.bincount(trade[one], gap[one], minlength=m), dtype=float)
    shared = np.flatnonzero(~one)
    rise = np.maximum(np.maximum(low[shared], high[shared]), 0.0)
    reach = excess + np.bincount(row[shared], rise, minlength=len(excess))
    live = shared[reach[row[shared]] > 0.0]
    up = _decided(own, options.nearer_high)
    if len(live) or norms:
        live = live[np.argsort(trade[live], kind="stable")]
        every = m if norms else None
        steps = _Steps.of(trade[live], row[live], low[live], high[live], excess, every=every)
        walked = steps.trades
        nearer = options.nearer_high[walked].tolist()
        up[walked] = _walk(steps, own[walked].tolist(), nearer, norms)
    return up


def _decided(gap: FloatArray, nearer_high: BoolArray) -> BoolArray:
    """The choice by `gap` alone: the lower score by more than `SCORE_EPS`, else nearer."""
    return np.where(np.abs(gap) > SCORE_EPS, gap < 0.0, nearer_high)


@dataclass
class _Steps:
    """The shared rows each walked trade moves: two slots per trade, then the rest.

    `trades` are the walked trades (positions in the order). `rows` holds every row's
    excess, plus a last entry at -inf: an empty slot points there with no change, so that
    it never counts.
    """

    trades: IntArray
    rows: list[float]
    slots: list[tuple[list[int], list[float], list[float]]]
    extra: Sequence[Sequence[tuple[int, float, float]]]

    @classmethod
    def of(
        cls,
        trade: IntArray,
        row: IntArray,
        low: FloatArray,
        high: FloatArray,
        excess: FloatArray,
        *,
        every: int | None = None,
    ) -> _Steps:
        """The moves (`trade`, `row`, `low`, `high`), sorted by trade.

        The walked trades are those with a move, or with `every` the first `every` trades
        (positions in the order), with a move or not.
        """
        first = np.ones(len(trade), dtype=bool)
        np.not_equal(trade[1:], trade[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        trades = trade[starts] if every is None else np.arange(every)
        # The slot of each trade with a move.
        slot = np.arange(len(starts)) if every is None else trade[starts]
        m, empty = len(trades), len(excess)
        counts = np.diff(np.append(starts, len(trade)))
        slots = []
        for j in (0, 1):
            has = counts > j
            at, to = starts[has] + j, slot[has]
            r = np.full(m, empty, dtype=np.int64)
            a, b = np.zeros(m), np.zeros(m)
            r[to], a[to], b[to] = row[at], low[at], high[at]
            slots.append((r.tolist(), a.tolist(), b.tolist()))
        extra: Sequence[Sequence[tuple[int, float, float]]] = [()] * m
        if len(counts) and counts.max() > 2:
            position = np.cumsum(first) - 1
            more: list[list[tuple[int, float, float]]] = [[] for _ in range(m)]
            for i in np.flatnonzero(np.arange(len(trade)) - starts[position] > 1).tolist():
                more[int(slot[position[i]])].append((int(row[i]), float(low[i]), float(high[i])))
            extra = more
        return cls(trades, [*excess.tolist(), -np.inf], slots, extra)


def _walk(
    steps: _Steps, own: list[float], nearer_high: list[bool], norms: Sequence[LiveNorm]
) -> list[bool]:
    """The sequential choices of the walked trades, each given the shared rows as left.

    Per trade, `gap` (upper less lower option) starts at its own rows' part and adds each
    shared row's penalty under the upper option less under the lower; the choice is
    `_decided`'s. Written out in one function, a trade's first two rows unrolled: this loop
    runs once per trade, where a call (or a loop) per row would cost more than the row.
    A norm (`norms`: then every trade is walked) adds its penalty under the upper option
    less under the lower, given the trades before (`LiveNorm`).
    """
    shared = steps.rows
    (rows0, low0, high0), (rows1, low1, high1) = steps.slots
    eps = SCORE_EPS
    followers = [norm.follow() for norm in norms]
    ahead = sum((next(follower) for follower in followers), 0.0)  # the norms' next gap
    picks: list[bool] = []
    for k, more in enumerate(steps.extra):
        gap = own[k]
        r = rows0[k]
        before = shared[r]
        x0 = before + low0[k]
        y0 = before + high0[k]
        if y0 > 0.0:
            gap += y0
        if x0 > 0.0:
            gap -= x0
        s = rows1[k]
        before = shared[s]
        x1 = before + low1[k]
        y1 = before + high1[k]
        if y1 > 0.0:
            gap += y1
        if x1 > 0.0:
            gap -= x1
        for j, a, b in more:
            before = shared[j]
            if before + b > 0.0:
                gap += before + b
            if before + a > 0.0:
                gap -= before + a
        gap += ahead
        up = gap < 0.0 if gap > eps or gap < -eps else nearer_high[k]
        if up:
            shared[r] = y0
            shared[s] = y1
            for j, _, b in more:
                shared[j] += b
        else:
            shared[r] = x0
            shared[s] = x1
            for j, a, _ in more:
                shared[j] += a
        ahead = 0.0
        for follower in followers:
            ahead += follower.send(up)
        picks.append(up)
    return picks

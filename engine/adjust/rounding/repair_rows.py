"""The one-lot repair over linear rows and capped norms, every move of a step scored at once.

`engine.adjust.rounding.lots.repair` takes, step by step, the one-lot move that lowers the
total violation most, scoring each move with the general tracker's trial: a few Python
calls per row the move reaches, for every movable trade twice per step (at n = 500, a
thousand trials a step, and a tracker to build first). Where every row set is linear or a
capped risk norm (`LinearRows`, `NormRows`), a step's scores are computed for every move
at once in numpy, each move made alone from the current trades: a linear row moves as in
the sweep (`LinearRows.moves`), a norm by `delta (2 e.m_i + delta |m_i|^2)` and its
specific term (`NormRows.alone`). The scores are the tracker's (the total plus the
changes of the rows the move reaches, exactly 0.0 when no row is left positive), and the
choice among them is `repair`'s, taken over them in its order; the step's trades are then
taken from scratch for the next one. `tests/engine/adjust/test_repair_rows.py` holds the
two together.
"""

from __future__ import annotations

import numpy as np

from engine.adjust.rounding.linear_rows import LinearRows
from engine.adjust.rounding.lots import SCORE_EPS
from engine.adjust.rounding.norm_rows import NormRows
from engine.weights.portfolio import Snapshot
from models.typing import BoolArray, FloatArray, IntArray

__all__ = ["repair_rows"]


def repair_rows(
    rows: LinearRows,
    norms: NormRows | None,
    snap: Snapshot,
    t: FloatArray,
    *,
    shrink_only: bool,
    max_moves: int = 60,
    max_evaluations: int = 2000,
) -> FloatArray:
    """`repair(snap, t, ...)` (same budget, same choices) over `rows` and `norms`."""
    t = np.array(t, dtype=float)
    lots = snap.lots
    movable = np.flatnonzero((lots > 0) & (t != -snap.q))
    # Each movable trade's two moves, in `repair`'s order: a lot down, then a lot up.
    steps = np.stack([-lots[movable], lots[movable]], axis=1).ravel()
    trades = np.repeat(movable, 2)
    scores: FloatArray | None
    current, scores = _scores(rows, norms, snap, t, movable)
    evaluations = 1
    for _ in range(max_moves):
        if current <= 0.0 or evaluations >= max_evaluations:
            break
        if scores is None:  # after a move: from the moved trades
            _, scores = _scores(rows, norms, snap, t, movable)
        options = t[trades] + steps
        allowed = _allowed(options, snap.t[trades]) if shrink_only else np.ones(len(steps), bool)
        evaluations += int(np.count_nonzero(allowed))
        best = _best(scores, allowed, current)
        if best is None:
            break
        current = float(scores[best])
        t[trades[best]] = options[best]
        scores = None
    return t


def _allowed(options: FloatArray, proposed: FloatArray) -> BoolArray:
    """With shrink_only: no trade grows past its proposal or flips side."""
    allowed: BoolArray = (np.abs(options) <= np.abs(proposed)) & (options * proposed >= 0)
    return allowed


def _best(scores: FloatArray, allowed: BoolArray, current: float) -> int | None:
    """`repair`'s pick among the allowed moves' `scores`, or None.

    Strictly lower than `current` by more than noise, and than the best found before it
    by more than noise; among equals the first found.
    """
    better = np.flatnonzero(allowed & (scores < current - SCORE_EPS))
    best: int | None = None
    best_score = 0.0
    for position, score in zip(better.tolist(), scores[better].tolist(), strict=True):
        if best is None or score < best_score - SCORE_EPS:
            best, best_score = position, score
    return best


def _scores(
    rows: LinearRows, norms: NormRows | None, snap: Snapshot, t: FloatArray, movable: IntArray
) -> tuple[float, FloatArray]:
    """The total violation at `t`, and after each move (a lot down, a lot up, per trade)."""
    w = snap.weights_from_trades(t)
    # The moved weights as the tracker computes them: from the moved trade.
    q, prices, lots = snap.q[movable], snap.prices[movable], snap.lots[movable]
    d_low = (q + (t[movable] - lots)) * prices / snap.nav - w[movable]
    d_high = (q + (t[movable] + lots)) * prices / snap.nav - w[movable]
    excess = rows.excess(w)
    positive = excess > 0.0
    total = float(excess[positive].sum())
    count = int(np.count_nonzero(positive))
    m = len(movable)
    change = np.zeros((m, 2))
    counts = np.zeros((m, 2), dtype=np.int64)
    moves = rows.moves(w, movable, d_low, d_high, alone=True)
    assert moves is not None  # never None alone
    before = excess[moves.row]
    for side, moved in enumerate((moves.low, moves.high)):
        after = before + moved
        gain = np.maximum(after, 0.0) - np.maximum(before, 0.0)
        flips = (after > 0.0).astype(np.int64) - (before > 0.0)
        change[:, side] = np.bincount(moves.trade, gain, minlength=m)
        counts[:, side] = np.bincount(moves.trade, flips, minlength=m)
    if norms is not None:
        penalty, positive_norms, by_side = norms.alone(w, movable, d_low, d_high)
        total, count = total + penalty, count + positive_norms
        for side, (norm_change, norm_count) in enumerate(by_side):
            change[:, side] += norm_change
            counts[:, side] += norm_count
    total = total if count else 0.0
    scores = np.where(count + counts == 0, 0.0, np.maximum(total + change, 0.0))
    return total, scores.ravel()

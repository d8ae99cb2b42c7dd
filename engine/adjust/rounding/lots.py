"""Rounding continuous trades to lots (SPEC section 2), in the ways worth checking."""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from engine import tolerances
from engine.tolerances import LOT_UNITS_SNAP
from engine.weights.portfolio import Snapshot
from models.typing import FloatArray

__all__ = [
    "SCORE_EPS",
    "SNAP_WEIGHT",
    "TradeScore",
    "lot_candidates",
    "repair",
    "rounding_steps",
    "sequential_rounding",
    "snapped",
]

SNAP_WEIGHT = tolerances.SNAP_WEIGHT
"""Trades within this weight of the proposal (or of no trade) are also tried snapped to it.

Interior-point solvers stop a little inside a bound that is degenerate at the optimum (an
untouched trade in scale_back sits at `alpha = 1` with a zero dual); snapping recovers the
exact value, and the checker decides whether the snapped candidate is kept.
"""


SCORE_EPS = tolerances.SCORE_NOISE
"""Violation scores closer than this are treated as equal when choosing between moves.

The incremental tracker and a from-scratch evaluation differ in the last bits (~1e-16
per row); without a margin, a move "lowering" the violation by that noise was taken by
one and not the other, and the searches parted. 1e-13 is far above that noise and far
below the checker's tolerance (1e-9), so real improvements are never ignored.
"""


def _preferred(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """True when option `a` (violation, distance, value) is preferred to `b`."""
    if abs(a[0] - b[0]) > SCORE_EPS:
        return a[0] < b[0]
    return (a[1], a[2]) <= (b[1], b[2])


class TradeScore(Protocol):
    """The total excess over the limits of trades that change one at a time.

    `engine.adjust.rounding.tracker.TradeViolation` keeps it without re-evaluating every row for
    each trial.
    """

    @property
    def total(self) -> float:
        """The total violation of the current trades."""
        ...

    def reset(self, t: FloatArray) -> None:
        """Make `t` (signed shares over V) the current trades."""
        ...

    def trial(self, i: int, trade: float) -> float:
        """The total violation if trade `i` were `trade`, the others as they are."""
        ...

    def commit(self, i: int, trade: float) -> None:
        """Make `trade` the current trade `i`."""
        ...


def rounding_steps(snap: Snapshot) -> FloatArray:
    """Largest weight change rounding can cause per symbol: one lot's value over NAV."""
    return snap.lots * snap.prices / snap.nav


def _to_lots(snap: Snapshot, t: FloatArray, *, shrink_only: bool) -> list[FloatArray]:
    lots = snap.lots
    fractional = lots <= 0
    safe_lots = np.where(fractional, 1.0, lots)
    units = t / safe_lots
    nearest = np.round(units) * safe_lots
    toward_zero = np.sign(units) * np.floor(np.abs(units) + LOT_UNITS_SNAP) * safe_lots
    if shrink_only:
        grows = (np.abs(nearest) > np.abs(snap.t)) | (nearest * snap.t < 0)
        nearest = np.where(grows, toward_zero, nearest)
    # A trade left exactly as proposed keeps its quantity, lot multiple or not, and so does
    # one that closes the position (the whole holding may be an odd lot).
    unchanged = (t == snap.t) | (t == -snap.q)
    return [np.where(fractional | unchanged, t, r) for r in (nearest, toward_zero)]


def snapped(snap: Snapshot, t: FloatArray) -> FloatArray:
    """`t` with trades near the proposal, no trade, or a close-out, moved exactly there.

    Near means within `SNAP_WEIGHT` of weight.
    """
    tolerance = SNAP_WEIGHT * snap.nav / snap.prices
    out = np.where(np.abs(t + snap.q) <= tolerance, -snap.q, t)
    out = np.where(np.abs(t) <= tolerance, 0.0, out)
    return np.where(np.abs(t - snap.t) <= tolerance, snap.t, out)


def lot_candidates(snap: Snapshot, t: FloatArray, *, shrink_only: bool) -> list[FloatArray]:
    """Lot-rounded versions of the continuous trades `t` (signed shares over V).

    Each trade becomes a whole number of lots, rounded to the nearest lot and, as another
    candidate, toward zero; the same again after `snapped`. A trade equal to the proposal,
    or closing the position, keeps its quantity. With
    `shrink_only` (scale_back) no trade grows or flips side. The checker picks among them.
    """
    tolerance = SNAP_WEIGHT * snap.nav / snap.prices
    snapped = np.where(
        np.abs(t - snap.t) <= tolerance, snap.t, np.where(np.abs(t) <= tolerance, 0.0, t)
    )
    out: list[FloatArray] = []
    for base in (snapped, t):
        for candidate in _to_lots(snap, base, shrink_only=shrink_only):
            if not any(np.array_equal(candidate, c) for c in out):
                out.append(candidate)
    return out


def sequential_rounding(
    snap: Snapshot,
    t: FloatArray,
    *,
    shrink_only: bool,
    violation: TradeScore,
) -> FloatArray:
    """Round one trade at a time, each to the side that breaks the limits least.

    Each trade goes to the lot below or above given the trades rounded so far and the rest
    still continuous. Rounding every trade on its own can push a row held at its limit by
    several trades out of bounds by the sum of their rounding errors; choosing each side in
    turn lets later trades make up for earlier ones. Trades are taken largest lot value
    first; a trade kept as proposed or closing the position is left as it is.
    `violation` scores the options (it is reset to `t` first and left at the result).
    """
    t = t.copy()
    violation.reset(t)
    lots, proposed, held = snap.lots.tolist(), snap.t.tolist(), snap.q.tolist()
    order = np.argsort(-(snap.lots * snap.prices), kind="stable").tolist()
    for i in order:
        lot, current = lots[i], float(t[i])
        if lot <= 0 or current == proposed[i] or current == -held[i]:
            continue
        units = current / lot
        options = {
            float(math.floor(units + LOT_UNITS_SNAP)) * lot,
            float(math.ceil(units - LOT_UNITS_SNAP)) * lot,
        }
        if shrink_only:
            options = {o for o in options if abs(o) <= abs(proposed[i]) and o * proposed[i] >= 0}
            options = options or {0.0}
        chosen: tuple[float, float, float] | None = None
        for option in sorted(options):
            scored = (violation.trial(i, option), abs(option - current), option)
            if chosen is None or _preferred(scored, chosen):
                chosen = scored
        assert chosen is not None
        t[i] = chosen[2]
        violation.commit(i, float(t[i]))
    return t


def repair(
    snap: Snapshot,
    t: FloatArray,
    *,
    shrink_only: bool,
    violation: TradeScore,
    max_moves: int = 60,
    max_evaluations: int = 2000,
) -> FloatArray:
    """Move single trades by one lot while that lowers the total violation.

    A local search from a rounded decision: at each step the one-lot move (on any trade
    that may change) that reduces `violation` the most is taken; it stops at zero violation,
    when no move helps, after `max_moves`, or after `max_evaluations` scores (counting the
    start; at n = 1000 an unbounded search took 18 s; the caller re-solves with tightened
    limits instead, which is cheaper). `violation` is reset to `t` first.
    """
    t = t.copy()
    violation.reset(t)
    lots, proposed = snap.lots.tolist(), snap.t.tolist()
    movable = [i for i in range(snap.n) if lots[i] > 0 and t[i] != -snap.q[i]]
    current = violation.total
    evaluations = 1
    for _ in range(max_moves):
        if current <= 0.0 or evaluations >= max_evaluations:
            break
        best: tuple[float, int, float] | None = None
        for i in movable:
            for step in (-lots[i], lots[i]):
                option = float(t[i]) + step
                if shrink_only and (abs(option) > abs(proposed[i]) or option * proposed[i] < 0):
                    continue
                score = violation.trial(i, option)
                evaluations += 1
                # Strictly lower by more than noise; among equals the first found.
                if score < current - SCORE_EPS and (best is None or score < best[0] - SCORE_EPS):
                    best = (score, i, option)
        if best is None:
            break
        current, i, option = best
        t[i] = option
        violation.commit(i, option)
    return t

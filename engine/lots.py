"""Rounding continuous trades to lots (SPEC section 2), in the ways worth checking."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.portfolio import Snapshot
from models.typing import FloatArray

__all__ = [
    "SNAP_WEIGHT",
    "lot_candidates",
    "repair",
    "rounding_steps",
    "sequential_rounding",
    "snapped",
]

SNAP_WEIGHT = 1e-5
"""Trades within this weight of the proposal (or of no trade) are also tried snapped to it.

Interior-point solvers stop a little inside a bound that is degenerate at the optimum (an
untouched trade in scale_back sits at `alpha = 1` with a zero dual); snapping recovers the
exact value, and the checker decides whether the snapped candidate is kept.
"""


def rounding_steps(snap: Snapshot) -> FloatArray:
    """Largest weight change rounding can cause per symbol: one lot's value over NAV."""
    return snap.lots * snap.prices / snap.nav


def _to_lots(snap: Snapshot, t: FloatArray, *, shrink_only: bool) -> list[FloatArray]:
    lots = snap.lots
    fractional = lots <= 0
    safe_lots = np.where(fractional, 1.0, lots)
    units = t / safe_lots
    nearest = np.round(units) * safe_lots
    toward_zero = np.sign(units) * np.floor(np.abs(units) + 1e-9) * safe_lots
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
    violation: Callable[[FloatArray], float],
) -> FloatArray:
    """Round one trade at a time, each to the side that breaks the limits least.

    Each trade goes to the lot below or above given the trades rounded so far and the rest
    still continuous. Rounding every trade on its own can push a row held at its limit by
    several trades out of bounds by the sum of their rounding errors; choosing each side in
    turn lets later trades make up for earlier ones. Trades are taken largest lot value
    first; a trade kept as proposed or closing the position is left as it is.
    `violation(t)` is the total excess over the limits of the trades `t`.
    """
    t = t.copy()
    order = np.argsort(-(snap.lots * snap.prices), kind="stable")
    for i in order:
        lot = snap.lots[i]
        if lot <= 0 or t[i] == snap.t[i] or t[i] == -snap.q[i]:
            continue
        units = t[i] / lot
        options = {float(np.floor(units + 1e-9)) * lot, float(np.ceil(units - 1e-9)) * lot}
        if shrink_only:
            options = {o for o in options if abs(o) <= abs(snap.t[i]) and o * snap.t[i] >= 0}
            options = options or {0.0}
        scored = []
        for option in sorted(options):
            trial = t.copy()
            trial[i] = option
            scored.append((violation(trial), abs(option - t[i]), option))
        t[i] = min(scored)[2]
    return t


def repair(
    snap: Snapshot,
    t: FloatArray,
    *,
    shrink_only: bool,
    violation: Callable[[FloatArray], float],
    max_moves: int = 60,
    max_evaluations: int = 2000,
) -> FloatArray:
    """Move single trades by one lot while that lowers the total violation.

    A local search from a rounded decision: at each step the one-lot move (on any trade
    that may change) that reduces `violation` the most is taken; it stops at zero violation,
    when no move helps, after `max_moves`, or after `max_evaluations` calls of `violation`
    (at n = 1000 an unbounded search took 18 s; the caller re-solves with tightened limits
    instead, which is cheaper).
    """
    t = t.copy()
    movable = [i for i in range(snap.n) if snap.lots[i] > 0 and t[i] != -snap.q[i]]
    current = violation(t)
    evaluations = 1
    for _ in range(max_moves):
        if current <= 0.0 or evaluations >= max_evaluations:
            break
        best: tuple[float, int, float] | None = None
        for i in movable:
            for step in (-snap.lots[i], snap.lots[i]):
                option = t[i] + step
                if shrink_only and (abs(option) > abs(snap.t[i]) or option * snap.t[i] < 0):
                    continue
                trial = t.copy()
                trial[i] = option
                score = violation(trial)
                evaluations += 1
                if score < current and (best is None or score < best[0]):
                    best = (score, i, option)
        if best is None:
            break
        current, i, option = best
        t[i] = option
    return t

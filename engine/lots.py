"""Rounding continuous trades to lots (SPEC section 2), in the ways worth checking."""

from __future__ import annotations

import numpy as np

from engine.portfolio import Snapshot
from models.typing import FloatArray

__all__ = ["SNAP_WEIGHT", "lot_candidates", "rounding_steps"]

SNAP_WEIGHT = 1e-6
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
    # A trade left exactly as proposed keeps its quantity, lot multiple or not.
    unchanged = t == snap.t
    return [np.where(fractional | unchanged, t, r) for r in (nearest, toward_zero)]


def lot_candidates(snap: Snapshot, t: FloatArray, *, shrink_only: bool) -> list[FloatArray]:
    """Lot-rounded versions of the continuous trades `t` (signed shares over V).

    Each trade becomes a whole number of lots, rounded to the nearest lot and, as another
    candidate, toward zero; the same again after snapping trades within `SNAP_WEIGHT` of the
    proposal (or of zero) onto it. A trade equal to the proposal keeps its quantity. With
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

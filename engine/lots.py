"""Rounding continuous trades to lots (SPEC section 2), in the ways worth checking."""

from __future__ import annotations

import numpy as np

from engine.portfolio import Snapshot
from models.typing import FloatArray

__all__ = ["lot_candidates", "rounding_steps"]

_SAME = 1e-9


def rounding_steps(snap: Snapshot) -> FloatArray:
    """Largest weight change rounding can cause per symbol: one lot's value over NAV."""
    return snap.lots * snap.prices / snap.nav


def lot_candidates(snap: Snapshot, t: FloatArray, *, shrink_only: bool) -> list[FloatArray]:
    """Lot-rounded versions of the continuous trades `t` (signed shares over V).

    A trade the solution leaves as proposed is kept verbatim (even if the proposal was not a
    lot multiple); a trade the solution removes becomes 0; every other trade becomes a whole
    number of lots, rounded to the nearest lot and, as a second candidate, toward zero.
    With `shrink_only` (scale_back) no trade may grow or flip side.
    """
    proposed = snap.t
    kept = np.abs(t - proposed) <= _SAME * np.maximum(1.0, np.abs(proposed))
    dropped = np.abs(t) <= _SAME * np.maximum(1.0, np.abs(proposed))
    lots = snap.lots
    fractional = lots <= 0
    safe_lots = np.where(fractional, 1.0, lots)
    units = t / safe_lots
    nearest = np.round(units) * safe_lots
    toward_zero = np.sign(units) * np.floor(np.abs(units) + 1e-9) * safe_lots
    if shrink_only:
        grows = (np.abs(nearest) > np.abs(proposed)) | (nearest * proposed < 0)
        nearest = np.where(grows, toward_zero, nearest)
    out = []
    for rounded in (nearest, toward_zero):
        candidate = np.where(fractional, t, rounded)
        candidate = np.where(kept, proposed, np.where(dropped, 0.0, candidate))
        if not any(np.array_equal(candidate, c) for c in out):
            out.append(candidate)
    return out

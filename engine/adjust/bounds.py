"""Row bounds of the adjustment problems, and how far a point is beyond them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.adjust.rounding.lots import rounding_steps
from engine.compile.layout import Layout
from engine.tolerances import SOLVER_MARGIN, TOLERANCE
from models.typing import FloatArray

__all__ = [
    "SOLVER_MARGIN",
    "excess",
    "max_violation",
    "shifted",
    "solve_bounds",
    "total_violation",
    "worst_case",
]

Bounds = list[FloatArray]


def solve_bounds(layout: Layout, k: int, *, cure_passive: bool) -> FloatArray:
    """The bound row set `k` gets in the adjustment problem.

    A row already beyond its limit before the decision may not get worse (bound = its
    pre-trade value) unless `cure_passive`, when every row is held to its limit. Rows that
    are always active (trade limits, turnover: 0 before the decision; the `max_positions`
    restriction's names to close) have no passive breach and are held to their limit.
    """
    rowset = layout.rowsets[k]
    if cure_passive or rowset.always_active:
        return rowset.limits.copy()
    pre = layout.pre_values[k]
    if rowset.sense == "le":
        return np.maximum(rowset.limits, pre)
    return np.minimum(rowset.limits, pre)


def shifted(layout: Layout, indices: Sequence[int], bounds: Bounds, margins: Bounds) -> Bounds:
    """Bounds moved inward by `margins`, never past a pre-trade value inside the bound.

    Not trading must stay feasible wherever it was.
    """
    out = []
    for k, bound, margin in zip(indices, bounds, margins, strict=True):
        pre = layout.pre_values[k]
        if layout.rowsets[k].sense == "le":
            out.append(np.where(pre <= bound, np.maximum(bound - margin, pre), bound - margin))
        else:
            out.append(np.where(pre >= bound, np.minimum(bound + margin, pre), bound + margin))
    return out


def worst_case(layout: Layout, indices: Sequence[int], bounds: Bounds) -> Bounds:
    """Bounds tightened by the most that rounding trades to lots can move each row."""
    eps = rounding_steps(layout.snap)
    margins = [layout.rowsets[k].block.perturbation_bound(eps) + SOLVER_MARGIN for k in indices]
    return shifted(layout, indices, bounds, margins)


def excess(layout: Layout, indices: Sequence[int], bounds: Bounds, w: FloatArray) -> Bounds:
    """Each row's excess over its bound at `w` (negative inside)."""
    out = []
    for k, bound in zip(indices, bounds, strict=True):
        rowset = layout.rowsets[k]
        values = rowset.block.values(w)
        out.append(values - bound if rowset.sense == "le" else bound - values)
    return out


def total_violation(layout: Layout, indices: Sequence[int], bounds: Bounds, w: FloatArray) -> float:
    """Sum over rows of the excess beyond the bound (less half the check's tolerance)."""
    return sum(
        float(np.clip(e - TOLERANCE / 2, 0.0, None).sum())
        for e in excess(layout, indices, bounds, w)
    )


def max_violation(layout: Layout, indices: Sequence[int], bounds: Bounds, w: FloatArray) -> float:
    """The largest excess over any bound (0 when every row is inside)."""
    return max((float(e.max(initial=0.0)) for e in excess(layout, indices, bounds, w)), default=0.0)

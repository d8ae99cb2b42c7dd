"""The roundings tried when no per-trade candidate passes the check, in the order tried.

`rounding_passes` yields them one at a time; the adjuster checks each and stops at the
first that passes:

1. sequential rounding (`engine.adjust.rounding.lots.sequential_rounding`, or the same
   choices through `engine.adjust.rounding.sweep` when every row set is linear or a capped
   risk norm) from the snapped trades and from the continuous ones, the start that breaks
   the limits less first;
2. a one-lot local repair (`engine.adjust.rounding.lots.repair`, or the same choices
   through `engine.adjust.rounding.repair_rows` where the sweep serves the rows) of the
   better of those;
3. where the repaired rounding holds the linear rows and only capped risk norms are past
   their caps, a few lots moved to bring them back (`engine.adjust.rounding.norm_fixup`);
4. the integer search (`engine.adjust.rounding.search.integer_rounding`), bounded by the
   request's deadline.

The general violation tracker is built only when a pass needs it: a row set that is
neither linear nor a capped norm.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial

import numpy as np

from engine.adjust.rounding.linear_rows import LinearRows
from engine.adjust.rounding.lots import repair, sequential_rounding, snapped
from engine.adjust.rounding.norm_fixup import norm_fixup
from engine.adjust.rounding.norm_rows import NormRows
from engine.adjust.rounding.repair_rows import repair_rows
from engine.adjust.rounding.search import integer_rounding
from engine.adjust.rounding.sweep import sweep
from engine.adjust.rounding.tracker import TradeViolation, ViolationTracker, swept_members
from engine.compile.layout import Layout
from engine.deadline import NO_DEADLINE, Deadline
from engine.weights.portfolio import Snapshot
from models.typing import FloatArray

__all__ = ["rounding_passes"]


class _Scores:
    """Total violations of trade vectors, and sequential rounding from them.

    From the rows themselves when every row set is linear or a capped norm (`LinearRows`,
    `NormRows`), else through the general tracker.
    """

    def __init__(self, layout: Layout, strict: Sequence[int], bounds: Sequence[FloatArray]) -> None:
        self.layout, self.strict, self.bounds = layout, strict, bounds
        self.linear: LinearRows | None = None
        self.norms: NormRows | None = None
        swept = swept_members(layout, strict, bounds)
        if swept is not None:
            self.linear = LinearRows(swept[0], layout.snap.n)
            self.norms = NormRows(swept[1]) if swept[1] else None
        self._tracked: TradeViolation | None = None

    def tracked(self) -> TradeViolation:
        """The general tracker (built on first use)."""
        if self._tracked is None:
            snap = self.layout.snap
            tracker = ViolationTracker(self.layout, self.strict, self.bounds, snap.w0)
            self._tracked = TradeViolation(snap, tracker)
        return self._tracked

    def total(self, t: FloatArray) -> float:
        """The total violation of the trades `t`."""
        if self.linear is not None:
            w = self.layout.snap.weights_from_trades(t)
            return self.linear.total(w) + (0.0 if self.norms is None else self.norms.total(w))
        tracked = self.tracked()
        tracked.reset(t)
        return tracked.total

    def repair(self, t: FloatArray, *, shrink_only: bool) -> FloatArray:
        """The one-lot repair from `t`."""
        if self.linear is not None:
            return repair_rows(
                self.linear, self.norms, self.layout.snap, t, shrink_only=shrink_only
            )
        return repair(self.layout.snap, t, shrink_only=shrink_only, violation=self.tracked())

    def sequential(self, t: FloatArray, *, shrink_only: bool) -> FloatArray:
        """Sequential rounding from `t`."""
        snap = self.layout.snap
        if self.linear is not None:
            swept = sweep(self.linear, snap, t, shrink_only=shrink_only, norms=self.norms)
            if swept is not None:
                return swept
        return sequential_rounding(snap, t, shrink_only=shrink_only, violation=self.tracked())


def _distance(snap: Snapshot, t: FloatArray) -> float:
    return float(np.sum((snap.weights_from_trades(t) - snap.w_hat) ** 2))


def rounding_passes(
    layout: Layout,
    strict: Sequence[int],
    bounds: Sequence[FloatArray],
    t: FloatArray,
    *,
    shrink_only: bool,
    deadline: Deadline = NO_DEADLINE,
) -> Iterator[FloatArray]:
    """Lot-rounded versions of the continuous trades `t`, the next one computed on demand.

    `strict` and `bounds` are the solver's row sets and bounds (as in the adjustment
    problem). Raises `DeadlineExceeded` (or `RequestCancelled`) before the integer search
    when the request must stop.
    """
    snap = layout.snap
    scores = _Scores(layout, strict, bounds)
    starts = [snapped(snap, t)]
    if not np.array_equal(starts[0], t):
        starts.append(t)
    # Snapping cancels trades under SNAP_WEIGHT; many of them (a projection that funds a
    # purchase by selling a little of every name) add up to a breach no rounding of the
    # rest can cure. Round from the start that breaches less (snapped on a tie), and from
    # the other one if that fails.
    starts.sort(key=scores.total)
    rounded: tuple[float, FloatArray] | None = None
    for start in starts:
        candidate = scores.sequential(start, shrink_only=shrink_only)
        yield candidate
        total = scores.total(candidate)
        if rounded is None or total < rounded[0]:
            rounded = (total, candidate)
    assert rounded is not None
    repaired = scores.repair(rounded[1], shrink_only=shrink_only)
    yield repaired
    if scores.linear is not None and scores.norms is not None:
        # From the repaired rounding and from the sequential one: neither is always the
        # closer start; the closer fix is tried first.
        fixes = [
            fixed
            for start in (repaired, rounded[1])
            if (
                fixed := norm_fixup(
                    scores.linear,
                    scores.norms,
                    snap,
                    start,
                    shrink_only=shrink_only,
                    deadline=deadline,
                )
            )
            is not None
        ]
        yield from sorted(fixes, key=partial(_distance, snap))
    found = integer_rounding(layout, strict, bounds, t, shrink_only=shrink_only, deadline=deadline)
    if found is not None:
        yield found

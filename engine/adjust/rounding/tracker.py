"""The total violation of bounded row sets, kept current as single weights move.

Rounding trades to lots (engine.adjust.rounding.lots) scores one trade's options at a time
against every bounded row. Re-evaluating every block for each option costs a full pass over
all rows per option; here each row set becomes a part (engine.adjust.rounding.tracked_parts)
that updates only the rows a moved weight reaches, and each weight knows which parts it
reaches at all.

The numbers are those of `engine.adjust.bounds.total_violation` (per row the excess beyond the
bound less half the check's tolerance, clipped at zero), up to rounding: sums are updated
by differences, not re-added, and `RESYNC_EVERY` commits recompute everything from
scratch so that the differences never drift far. The total is exactly 0.0 whenever no row
has a positive penalty, as from scratch, so feasible options tie exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.adjust.rounding.tracked_linear import (
    AbsSumMember,
    AffineMember,
    LinearMember,
    LinearTracker,
)
from engine.adjust.rounding.tracked_parts import TrackedPart, WholeBlock
from engine.adjust.rounding.tracked_scalar import (
    AboveThresholdTracker,
    CappedSumTracker,
    CVaRTracker,
    LargestTracker,
    NormTracker,
    PositivePartTracker,
)
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import CVaRBlock, NormBlock, SumLargestAbsBlock
from engine.compile.layout import Layout
from engine.compile.piecewise import AboveThresholdSumBlock, CappedSumBlock, PositivePartSumBlock
from engine.weights.portfolio import Snapshot
from models.typing import FloatArray

__all__ = [
    "RESYNC_EVERY",
    "TradeViolation",
    "ViolationTracker",
    "linear_members",
    "swept_members",
    "tracked_parts",
]

RESYNC_EVERY = 128
"""Commits between two recomputations from scratch (each costs about one full evaluation)."""


class _Parts:
    """The tracker's part of each block kind (`engine.compile.representations.TrackerForms`).

    Affine and absolute-sum row sets are collected into `linear` (one `LinearTracker` for all
    of them) and answer None; every other kind answers its own part, `WholeBlock` when it
    has no incremental form.
    """

    def __init__(self) -> None:
        self.linear: list[LinearMember] = []
        self.sense = "le"
        self.bound = np.zeros(0)

    def affine(self, block: AffineBlock) -> TrackedPart | None:
        self.linear.append(AffineMember(block, self.sense, self.bound))
        return None

    def abs_sum(self, block: AbsSumBlock) -> TrackedPart | None:
        self.linear.append(AbsSumMember(block, self.sense, self.bound))
        return None

    def sum_largest_abs(self, block: SumLargestAbsBlock) -> TrackedPart | None:
        return LargestTracker(block, self.sense, self.bound)

    def norm(self, block: NormBlock) -> TrackedPart | None:
        return NormTracker(block, self.sense, self.bound)

    def cvar(self, block: CVaRBlock) -> TrackedPart | None:
        return CVaRTracker(block, self.sense, self.bound)

    def capped_sum(self, block: CappedSumBlock) -> TrackedPart | None:
        return CappedSumTracker(block, self.sense, self.bound)

    def positive_part_sum(self, block: PositivePartSumBlock) -> TrackedPart | None:
        return PositivePartTracker(block, self.sense, self.bound)

    def above_threshold(self, block: AboveThresholdSumBlock) -> TrackedPart | None:
        return AboveThresholdTracker(block, self.sense, self.bound)

    def unsupported(self, block: Block) -> TrackedPart | None:
        return WholeBlock(block, self.sense, self.bound)


def tracked_parts(
    layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]
) -> list[TrackedPart]:
    """The parts of row sets `indices` with their `bounds`: every linear row set in one."""
    forms = _Parts()
    parts: list[TrackedPart] = []
    for k, bound in zip(indices, bounds, strict=True):
        rowset = layout.rowsets[k]
        forms.sense, forms.bound = rowset.sense, bound
        part = rowset.block.tracker(forms)
        if part is not None:
            parts.append(part)
    if forms.linear:
        parts.insert(0, LinearTracker(forms.linear, layout.snap.n))
    return parts


def linear_members(
    layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]
) -> list[LinearMember] | None:
    """Row sets `indices` as linear members; None when some row set is not linear."""
    forms = _Parts()
    for k, bound in zip(indices, bounds, strict=True):
        rowset = layout.rowsets[k]
        forms.sense, forms.bound = rowset.sense, bound
        if rowset.block.tracker(forms) is not None:
            return None
    return forms.linear


class _SweptParts(_Parts):
    """`_Parts` collecting the risk norms bounded from above instead of building their parts."""

    def __init__(self) -> None:
        super().__init__()
        self.norms: list[tuple[NormBlock, FloatArray]] = []

    def norm(self, block: NormBlock) -> TrackedPart | None:
        if self.sense != "le":  # a floor on a norm is not convex: left to the tracker
            return super().norm(block)
        self.norms.append((block, self.bound))
        return None


def swept_members(
    layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]
) -> tuple[list[LinearMember], list[tuple[NormBlock, FloatArray]]] | None:
    """Row sets `indices` as linear members and capped norms (with their bounds).

    None when some row set is neither (`engine.adjust.rounding.sweep` serves these two).
    """
    forms = _SweptParts()
    for k, bound in zip(indices, bounds, strict=True):
        rowset = layout.rowsets[k]
        forms.sense, forms.bound = rowset.sense, bound
        if rowset.block.tracker(forms) is not None:
            return None
    return forms.linear, forms.norms


class ViolationTracker:
    """`total_violation(layout, indices, bounds, w)` as single weights of `w` move."""

    def __init__(
        self, layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray], w: FloatArray
    ) -> None:
        n = layout.snap.n
        self.parts = tracked_parts(layout, indices, bounds)
        # Per weight, the parts it moves; weights moving the same parts share one tuple.
        self._parts_of: list[tuple[TrackedPart, ...]] = [()] * n
        if self.parts:
            reach = np.array([part.columns(n) for part in self.parts], dtype=bool)
            patterns, which = np.unique(reach.T, axis=0, return_inverse=True)
            shared = [
                tuple(p for p, on in zip(self.parts, row, strict=True) if on) for row in patterns
            ]
            self._parts_of = [shared[c] for c in which.ravel().tolist()]
        self._w: list[float] = []
        self.total = 0.0
        self.positive = 0
        self._commits = 0
        self.reset(w)

    @property
    def weights(self) -> FloatArray:
        """The current weights."""
        return np.array(self._w)

    def reset(self, w: FloatArray) -> None:
        """Start over at the weights `w`, everything computed from scratch."""
        self._w = np.asarray(w, dtype=float).tolist()
        at = np.array(self._w)
        for part in self.parts:
            part.reset(at)
        self._commits = 0
        self._sum()

    def _sum(self) -> None:
        self.positive = sum(part.positive for part in self.parts)
        self.total = sum(part.penalty for part in self.parts) if self.positive else 0.0

    def trial(self, i: int, value: float) -> float:
        """The total violation if weight `i` were `value` (nothing changes)."""
        old = self._w[i]
        if value == old:
            return self.total
        penalty = 0.0
        positive = 0
        for part in self._parts_of[i]:
            p, c = part.trial(i, old, value)
            penalty += p
            positive += c
        if self.positive + positive == 0:
            return 0.0
        return max(self.total + penalty, 0.0)

    def commit(self, i: int, value: float) -> None:
        """Set weight `i` to `value`."""
        old = self._w[i]
        if value == old:
            return
        self._w[i] = value
        self._commits += 1
        if self._commits >= RESYNC_EVERY:
            self.reset(np.array(self._w))
            return
        for part in self._parts_of[i]:
            part.commit(i, old, value)
        self._sum()


class TradeViolation:
    """A `ViolationTracker` driven by trades in shares, as `engine.adjust.rounding.lots` rounds.

    Trade `t_i` sets weight `w_i = (q_i + t_i) p_i / NAV` and no other (cash is not a
    weight), computed as `Snapshot.weights_from_trades` computes it.
    """

    def __init__(self, snap: Snapshot, tracker: ViolationTracker) -> None:
        self.snap = snap
        self.tracker = tracker
        self._q: list[float] = snap.q.tolist()
        self._prices: list[float] = snap.prices.tolist()
        self._nav = float(snap.nav)

    @property
    def total(self) -> float:
        """The total violation of the current trades."""
        return self.tracker.total

    def reset(self, t: FloatArray) -> None:
        """Start over at the trades `t`."""
        self.tracker.reset(self.snap.weights_from_trades(t))

    def _weight(self, i: int, trade: float) -> float:
        return (self._q[i] + trade) * self._prices[i] / self._nav

    def trial(self, i: int, trade: float) -> float:
        """The total violation if trade `i` were `trade`."""
        return self.tracker.trial(i, self._weight(i, trade))

    def commit(self, i: int, trade: float) -> None:
        """Set trade `i` to `trade`."""
        self.tracker.commit(i, self._weight(i, trade))

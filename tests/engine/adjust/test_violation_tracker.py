"""The violation tracker against `total_violation` from scratch, and lot rounding with it.

Every block kind (the all-kinds layout of test_blocks, exact and solver rows) and random
cases are walked through random single-weight moves: each trial and each commit must give
the total that evaluating every row set at the moved weights gives, to 1e-12. Moves often
land on another weight's value or on zero, where sorted magnitudes tie and absolute terms
turn. Lot rounding driven by the tracker must make the same choices as driven by a score
that re-evaluates every row set per trial (how it scored before the tracker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.cases import PolicySet, build_case
from engine.adjust.bounds import solve_bounds, total_violation
from engine.adjust.rounding.lots import repair, sequential_rounding
from engine.adjust.rounding.tracked_linear import LinearTracker
from engine.adjust.rounding.tracked_parts import WholeBlock
from engine.adjust.rounding.tracked_scalar import (
    AboveThresholdTracker,
    CappedSumTracker,
    CVaRTracker,
    LargestTracker,
    NormTracker,
    PositivePartTracker,
)
from engine.adjust.rounding.tracker import (
    RESYNC_EVERY,
    TradeViolation,
    ViolationTracker,
    tracked_parts,
)
from engine.compile.blocks import AbsSumBlock, AffineBlock, Block
from engine.compile.conic_blocks import CVaRBlock, NormBlock, SumLargestAbsBlock
from engine.compile.language.block import ExpressionBlock
from engine.compile.layout import Layout, build_layout
from engine.compile.piecewise import (
    AboveThresholdSumBlock,
    CappedSumBlock,
    OpenCountBlock,
    PositivePartSumBlock,
)
from engine.compile.rows import RowSet, Sense
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import Snapshot, snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from models.typing import FloatArray
from tests.engine.compile.test_blocks import _layout as all_kinds_layout
from tests.strategies import Move, grid, moves, random_case, seeds, synthetic_rows

EXACT = 1e-12

EXPECTED_PART = {
    AffineBlock: LinearTracker,
    AbsSumBlock: LinearTracker,
    NormBlock: NormTracker,
    SumLargestAbsBlock: LargestTracker,
    CVaRBlock: CVaRTracker,
    CappedSumBlock: CappedSumTracker,
    PositivePartSumBlock: PositivePartTracker,
    AboveThresholdSumBlock: AboveThresholdTracker,
    ExpressionBlock: WholeBlock,
    OpenCountBlock: WholeBlock,
}


@cache
def _all_kinds() -> tuple[Layout, Layout]:
    exact = all_kinds_layout()
    return exact, exact.for_solver()


def _bounds_near(
    layout: Layout, indices: Sequence[int], w: FloatArray, rng: np.random.Generator
) -> list[FloatArray]:
    """Bounds a little either side of the rows' values at `w`: some rows in breach."""
    out = []
    for k in indices:
        values = layout.rowsets[k].block.values(w)
        out.append(values + rng.normal(0.0, 0.01, len(values)) * rng.integers(0, 2, len(values)))
    return out


def _random_moves(rng: np.random.Generator, n: int, count: int) -> list[Move]:
    """Seeded moves, for the tests that are not drawn by hypothesis."""
    kinds = ["copy", "negated", "zero", "step"]
    return [
        Move(
            i=int(rng.integers(n)),
            to=kinds[int(rng.integers(4))],
            other=int(rng.integers(n)),
            step=float(rng.normal(0.0, 0.05)),
            commit=bool(rng.random() < 0.5),
        )
        for _ in range(count)
    ]


def _walk(
    layout: Layout,
    indices: Sequence[int],
    bounds: list[FloatArray],
    w: FloatArray,
    walk: Sequence[Move],
) -> None:
    """Trials and commits of `walk`'s moves, each against the total from scratch."""
    tracker = ViolationTracker(layout, indices, bounds, w)
    w = np.array(w, dtype=float)
    assert tracker.total == pytest.approx(total_violation(layout, indices, bounds, w), abs=EXACT)
    for move in walk:
        i, value = move.i, move.value(w)
        moved = w.copy()
        moved[i] = value
        expected = total_violation(layout, indices, bounds, moved)
        trial = tracker.trial(i, value)
        assert trial == pytest.approx(expected, abs=EXACT)
        assert (trial == 0.0) == (expected == 0.0)
        if move.commit:
            tracker.commit(i, value)
            w = moved
            assert tracker.total == pytest.approx(expected, abs=EXACT)
            assert (tracker.total == 0.0) == (expected == 0.0)  # feasible options tie exactly
    np.testing.assert_array_equal(tracker.weights, w)


def _offsets_near(
    layout: Layout, indices: Sequence[int], w: FloatArray, data: st.DataObject
) -> list[FloatArray]:
    """Bounds drawn near the rows' values at `w`: every other row of a set on its bound,
    the rest moved by one drawn offset (in breach, or with room)."""
    out = []
    for k in indices:
        values = layout.rowsets[k].block.values(w)
        offset = data.draw(st.one_of(st.just(0.0), grid(-0.02, 0.02, 40)))
        first = data.draw(st.integers(0, 1))
        moved = (np.arange(len(values)) + first) % 2 == 0
        out.append(values + np.where(moved, offset, 0.0))
    return out


def _drawn_weights(n: int, data: st.DataObject, scale: float) -> FloatArray:
    """Offsets from the pre-trade weights, drawn (they shrink to zero)."""
    step = st.one_of(st.just(0.0), grid(-scale, scale, 100))
    return np.array(data.draw(st.lists(step, min_size=n, max_size=n)), dtype=float)


def test_every_block_kind_gets_its_part() -> None:
    exact, solver = _all_kinds()
    seen: set[type] = set()
    for layout in (exact, solver):
        for k, rowset in enumerate(layout.rowsets):
            [part] = tracked_parts(layout, [k], [layout.rowsets[k].limits])
            assert type(part) is EXPECTED_PART[type(rowset.block)], rowset.violation_type
            seen.add(type(rowset.block))
    assert seen == set(EXPECTED_PART)  # the layouts hold every kind


def _alone(block: Block, sense: Sense) -> Layout:
    """A layout of one row set, `block`, over the all-kinds universe."""
    rows = block.rows
    rowset = RowSet(block, sense, np.zeros(rows), [None] * rows, "test.rows", lambda _: "row")
    return Layout(snap=_all_kinds()[0].snap, rowsets=[rowset], policies=[])


@dataclass
class _DoubledAffine(AffineBlock):
    """A subclass whose values differ from its base's: only its own `values` knows them."""

    def values(self, w: FloatArray) -> FloatArray:
        return 2.0 * super().values(w)


def test_a_block_type_without_an_incremental_form_is_evaluated_whole() -> None:
    rng = np.random.default_rng(3)
    n = _all_kinds()[0].snap.n
    layout = _alone(_DoubledAffine(A=rng.normal(size=(3, n)), c=rng.normal(size=3)), "le")
    [part] = tracked_parts(layout, [0], [layout.rowsets[0].limits])
    assert type(part) is WholeBlock
    w = layout.snap.w0 + rng.normal(0.0, 0.05, n)
    _walk(layout, [0], _bounds_near(layout, [0], w, rng), w, _random_moves(rng, n, 30))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_synthetic_blocks_match_the_total_from_scratch(data: st.DataObject) -> None:
    """Shapes the policy kinds do not build: a weight in several terms of one row, any k."""
    n = _all_kinds()[0].snap.n
    drawn = data.draw(synthetic_rows(n), label="rows")
    blocks: list[Block] = [
        AbsSumBlock(
            A=sp.csr_matrix(drawn.A),
            c=drawn.c,
            G=None if drawn.G is None else sp.csr_matrix(drawn.G),
            k=drawn.k,
        ),
        AffineBlock(A=drawn.A_affine, c=drawn.c_affine, structural=False),
        SumLargestAbsBlock(n=n, top_k=drawn.top_k),
    ]
    for block, sense, offsets in zip(blocks, drawn.senses, drawn.offsets, strict=True):
        layout = _alone(block, "ge" if sense == "ge" else "le")
        bounds = [block.values(drawn.w) + offsets]
        _walk(layout, [0], bounds, drawn.w, data.draw(moves(n), label="moves"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_block_kind_matches_the_total_from_scratch(data: st.DataObject) -> None:
    for layout in _all_kinds():
        n = layout.snap.n
        w = layout.snap.w0 + _drawn_weights(n, data, 0.1)
        # One short walk for every row set alone (a walk per row set would draw too much).
        walk = data.draw(moves(n, 8), label="moves per row set")
        for k in range(len(layout.rowsets)):
            _walk(layout, [k], _offsets_near(layout, [k], w, data), w, walk)
        every = list(range(len(layout.rowsets)))
        walk = data.draw(moves(n, 30), label="moves")
        _walk(layout, every, _offsets_near(layout, every, w, data), w, walk)


def _random_layout(seed: int, **options: object) -> Layout:
    body, raw = random_case(np.random.default_rng(seed), **options)  # type: ignore[arg-type]
    request = PolicyValidationRequest.model_validate(body)
    policies = [PolicyDefinition.model_validate(p) for p in raw]
    snap = snapshot_of(request)
    return build_layout(effective_policies(request, policies), request, snap).for_solver()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds(), data=st.data())
def test_random_cases_match_the_total_from_scratch(seed: int, data: st.DataObject) -> None:
    # The case is drawn from a seed (tests/strategies.random_case); the point and the walk
    # on it are drawn structurally, so a failure shrinks to few, simple moves.
    layout = _random_layout(seed)
    strict = layout.strict()
    bounds = [solve_bounds(layout, k, cure_passive=False) for k in strict]
    n = layout.snap.n
    w = layout.snap.w0 + _drawn_weights(n, data, 0.04)
    _walk(layout, strict, bounds, w, data.draw(moves(n), label="moves"))


def test_recomputing_from_scratch_keeps_the_totals() -> None:
    _, solver = _all_kinds()
    rng = np.random.default_rng(11)
    every = list(range(len(solver.rowsets)))
    w = solver.snap.w0 + rng.normal(0.0, 0.05, solver.snap.n)
    walk = _random_moves(rng, solver.snap.n, 4 * RESYNC_EVERY)
    _walk(solver, every, _bounds_near(solver, every, w, rng), w, walk)


class FromScratch:
    """A `TradeScore` evaluating every row set at the whole trade vector per trial."""

    def __init__(
        self, layout: Layout, indices: Sequence[int], bounds: Sequence[FloatArray]
    ) -> None:
        self.layout, self.indices, self.bounds = layout, indices, list(bounds)
        self.t = np.zeros(layout.snap.n)

    def _score(self, t: FloatArray) -> float:
        w = self.layout.snap.weights_from_trades(t)
        return total_violation(self.layout, self.indices, self.bounds, w)

    @property
    def total(self) -> float:
        return self._score(self.t)

    def reset(self, t: FloatArray) -> None:
        self.t = np.array(t, dtype=float)

    def trial(self, i: int, trade: float) -> float:
        moved = self.t.copy()
        moved[i] = trade
        return self._score(moved)

    def commit(self, i: int, trade: float) -> None:
        self.t[i] = trade


def _round_both_ways(layout: Layout, rng: np.random.Generator, *, shrink_only: bool) -> None:
    """Round fractional trades with both scores; every row held at its continuous value."""
    snap: Snapshot = layout.snap
    strict = layout.strict()
    # Continuous trades: the proposal scaled per name, off the lot grid.
    lots = np.where(snap.lots > 0, snap.lots, 1.0)
    t = snap.t * rng.uniform(0.2, 1.0, snap.n) + rng.uniform(-3, 3, snap.n) * lots
    if shrink_only:
        t = np.clip(np.abs(t), 0, np.abs(snap.t)) * np.sign(snap.t)
    w = snap.weights_from_trades(t)
    bounds = [layout.rowsets[k].block.values(w) for k in strict]
    tracked = TradeViolation(snap, ViolationTracker(layout, strict, bounds, w))
    scratch = FromScratch(layout, strict, bounds)
    rounded = sequential_rounding(snap, t, shrink_only=shrink_only, violation=tracked)
    expected = sequential_rounding(snap, t, shrink_only=shrink_only, violation=scratch)
    np.testing.assert_array_equal(rounded, expected)
    repaired = repair(snap, rounded, shrink_only=shrink_only, violation=tracked)
    np.testing.assert_array_equal(
        repaired, repair(snap, expected, shrink_only=shrink_only, violation=scratch)
    )
    assert tracked.total == pytest.approx(scratch.total, abs=EXACT)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds())
def test_rounding_with_the_tracker_chooses_as_from_scratch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    layout = _random_layout(seed, lot_mode=str(rng.choice(["one", "mixed"])))
    _round_both_ways(layout, rng, shrink_only=bool(rng.integers(2)))


@pytest.mark.parametrize("policy_set", ["base", "twenty", "cones"])
def test_rounding_the_benchmark_cases_chooses_as_from_scratch(policy_set: PolicySet) -> None:
    case = build_case(60)
    request = case.request(0, policy_set=policy_set, mode="adjust", adjustment="project")
    snap = snapshot_of(request)
    layout = build_layout(case.policies[policy_set], request, snap).for_solver()
    for seed in range(3):
        _round_both_ways(layout, np.random.default_rng(seed), shrink_only=seed == 2)

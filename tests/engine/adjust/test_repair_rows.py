"""The one-lot repair scored at once (engine.adjust.rounding.repair_rows) against the tracker's.

`repair_rows` must make the moves `repair` makes with the general violation tracker (the
implementation it replaces where every row set is linear or a capped norm), within the
same budget: the same trades on random cases whose rows are held at their continuous
values (so that rounding breaks them and the repair has work to do), on a term every trade
moves, and on the benchmark's cone cases.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adjust.rounding.linear_rows import LinearRows
from engine.adjust.rounding.lots import lot_candidates, repair
from engine.adjust.rounding.norm_rows import NormRows
from engine.adjust.rounding.repair_rows import repair_rows
from engine.adjust.rounding.tracker import TradeViolation, ViolationTracker, swept_members
from engine.compile.blocks import AbsSumBlock
from engine.compile.layout import Layout
from engine.compile.rows import RowSet
from models.typing import FloatArray
from tests.engine.adjust.rounding_cases import (
    benchmark_layouts,
    continuous_trades,
)
from tests.engine.adjust.rounding_cases import random_layout as _layout
from tests.strategies import seeds


def _both_ways(
    layout: Layout, strict: list[int], t: FloatArray, *, shrink_only: bool, **budget: int
) -> None:
    """Hold every row at its value at `t`, round to the nearest lot, repair both ways."""
    snap = layout.snap
    w = snap.weights_from_trades(t)
    bounds = [layout.rowsets[k].block.values(w) for k in strict]
    start = lot_candidates(snap, t, shrink_only=shrink_only)[0]
    tracker = TradeViolation(snap, ViolationTracker(layout, strict, bounds, snap.w0))
    expected = repair(snap, start, shrink_only=shrink_only, violation=tracker, **budget)
    members = swept_members(layout, strict, bounds)
    assert members is not None
    rows = LinearRows(members[0], snap.n)
    norms = NormRows(members[1]) if members[1] else None
    found = repair_rows(rows, norms, snap, start, shrink_only=shrink_only, **budget)
    np.testing.assert_array_equal(found, expected)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds(), shrink_only=st.booleans())
def test_the_repair_scored_at_once_moves_as_the_tracker(seed: int, shrink_only: bool) -> None:
    layout = _layout(seed)
    t = continuous_trades(layout, np.random.default_rng(seed), shrink_only=shrink_only)
    _both_ways(layout, layout.strict(), t, shrink_only=shrink_only)


@pytest.mark.parametrize("budget", [{"max_moves": 3}, {"max_evaluations": 25}])
def test_the_repair_keeps_the_trackers_budget(budget: dict[str, int]) -> None:
    layout = _layout(5)
    t = continuous_trades(layout, np.random.default_rng(5), shrink_only=False)
    _both_ways(layout, layout.strict(), t, shrink_only=False, **budget)


def test_a_term_every_trade_moves_is_repaired_as_the_tracker() -> None:
    snap = _layout(3).snap
    n = snap.n
    # One absolute term over every name: the sweep leaves it to the tracker, but each
    # repair move is made alone, and its change is known.
    block = AbsSumBlock(A=sp.csr_matrix(np.ones((1, n))), c=np.array([-0.5]))
    rowset = RowSet(block, "le", np.zeros(1), [None], "test.rows", lambda _: "row")
    layout = Layout(snap=snap, rowsets=[rowset], policies=[])
    t = continuous_trades(layout, np.random.default_rng(3), shrink_only=False)
    _both_ways(layout, [0], t, shrink_only=False)


@pytest.mark.parametrize("policy_set", ["cones", "twenty"])
def test_the_benchmark_cases_are_repaired_as_the_tracker_repairs(policy_set: str) -> None:
    for i, _snap, layout in benchmark_layouts(policy_set, 2):
        t = continuous_trades(layout, np.random.default_rng(i), shrink_only=False)
        _both_ways(layout, layout.strict(), t, shrink_only=False)

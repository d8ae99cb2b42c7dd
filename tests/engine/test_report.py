"""A row's culprit (the changed trade that cures it most) is the one trying each finds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from engine import report
from engine.adjust.adjuster import Adjustment
from engine.check.checker import RowCheck, check
from engine.compile.layout import Layout, build_layout
from engine.report import _culprit
from engine.resolve.resolve import effective_policies
from engine.weights.portfolio import Snapshot, snapshot_of
from models import AdjustmentMethod, PolicyDefinition, PolicyValidationRequest
from tests.strategies import random_case


def _layout(seed: int) -> Layout:
    body, raw = random_case(
        np.random.default_rng(90_000 + seed), n_names=int(12 + seed % 15), lot_mode="fractional"
    )
    req = PolicyValidationRequest.model_validate(body)
    policies = [PolicyDefinition.model_validate(p) for p in raw]
    return build_layout(effective_policies(req, policies), req, snapshot_of(req))


def _adjustment(snap: Snapshot, t: np.ndarray) -> Adjustment:
    w = snap.weights_from_trades(t)
    return Adjustment(AdjustmentMethod.PROJECT, t, w, 0.0, "test", [], [])


def _tried_one_by_one(rc: RowCheck, r: int, snap: Snapshot, adjustment: Adjustment) -> int | None:
    changed = np.flatnonzero(adjustment.t != snap.t)
    subject = rc.rowset.subjects[r]
    if subject in snap.index and snap.index[subject] in changed:
        return snap.index[subject]
    best, gain = None, 0.0
    for i in changed:
        w = snap.w_hat.copy()
        w[i] = adjustment.w[i]
        improvement = rc.post_excess[r] - rc.rowset.excess(rc.rowset.block.values(w))[r]
        if improvement > gain:
            best, gain = int(i), float(improvement)
    return best


@pytest.mark.parametrize("seed", range(15))
def test_culprit_equals_trying_every_change(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report, "SCREEN_FROM", 2)  # screen even these small cases
    monkeypatch.setattr(report, "SCREEN_NORM_FROM", 2)
    layout = _layout(seed)
    snap = layout.snap
    rng = np.random.default_rng(seed)
    scale = np.maximum(np.abs(snap.q), 1.0)
    for tie in (False, True):
        moved = rng.random(snap.n) < 0.8
        step = rng.normal(0, 0.05, snap.n) * scale
        if tie:  # equal moves in weight: rows over sums see equal improvements
            step = np.full(snap.n, -0.01) * snap.nav / snap.prices
        t = np.where(moved, snap.t + step, snap.t)
        adjustment = _adjustment(snap, t)
        result = check(layout, snap.w_hat, cure_passive=True)
        for rc in result.checks:
            for r in range(rc.rowset.rows):
                assert _culprit(rc, r, snap, adjustment) == _tried_one_by_one(
                    rc, r, snap, adjustment
                ), (rc.rowset.violation_type, r)


@pytest.mark.parametrize("through_scipy", [False, True])
@pytest.mark.parametrize("seed", range(15))
def test_the_risk_norms_shift_estimate_is_the_moved_value(
    seed: int, through_scipy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if through_scipy:  # as for a P with duplicate entries (no column index)
        monkeypatch.setattr(report, "column_index", lambda owner, name: None)
    from engine.compile.conic_blocks import NormBlock
    from engine.report import _Shifts

    layout = _layout(seed)
    snap = layout.snap
    rng = np.random.default_rng(seed)
    changed = np.flatnonzero(rng.random(snap.n) < 0.7)
    moves = rng.normal(0, 0.02, len(changed))
    for rowset in layout.rowsets:
        block = rowset.block
        if type(block) is not NormBlock:
            continue
        shift = block.row_shift(_Shifts(0, snap.w_hat, changed, moves))
        before = block.values(snap.w_hat)[0]
        for k, i in enumerate(changed):
            w = snap.w_hat.copy()
            w[i] += moves[k]
            assert shift[k] == pytest.approx(block.values(w)[0] - before, abs=1e-12)


def _one_change(symbol: str, old: float, new: float) -> str:
    """The trade change's line, stated trade by trade (what `trade_changes` vectorizes)."""

    def shares(q: float) -> str:
        return f"{abs(q):,.4f}".rstrip("0").rstrip(".")

    side_old, side_new = ("BUY" if old > 0 else "SELL"), ("BUY" if new > 0 else "SELL")
    if old == 0:
        return f"Add {side_new} {symbol} {shares(new)} shares"
    if new == 0:
        return f"Cancel {side_old} {symbol} ({shares(old)} shares)"
    if side_old != side_new:
        return f"Replace {side_old} {symbol} {shares(old)} by {side_new} {shares(new)} shares"
    verb = "Reduce" if abs(new) < abs(old) else "Increase"
    return f"{verb} {side_old} {symbol} from {shares(old)} to {shares(new)} shares"


@pytest.mark.parametrize("seed", range(5))
def test_trade_changes_read_as_each_change_stated_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    old = np.round(rng.normal(0, 3000, n), int(rng.integers(0, 6)))
    new = old * rng.choice([-1.5, -0.5, 0.0, 0.3, 1.0, 2.0], n) + rng.choice([0.0, 0.25], n)
    old[rng.random(n) < 0.2] = 0.0
    changed = np.flatnonzero(old != new)
    symbols = [f"S{i}" for i in changed]
    lines = report.trade_changes(symbols, old[changed], new[changed])
    expected = [
        _one_change(s, float(old[i]), float(new[i])) for s, i in zip(symbols, changed, strict=True)
    ]
    assert lines == expected
    kinds = {line.split()[0] for line in lines}
    assert kinds == {"Add", "Cancel", "Replace", "Reduce", "Increase"}


def test_trades_of_lists_every_nonzero_net_trade_in_order() -> None:
    snap = _layout(3).snap
    t = np.zeros(snap.n)
    t[::2] = np.arange(len(t[::2])) - 2.5
    trades = report.trades_of(snap, t)
    expected = [
        (snap.symbols[i], "BUY" if t[i] > 0 else "SELL", abs(t[i])) for i in np.flatnonzero(t)
    ]
    assert [(x.symbol, x.side.value, x.quantity) for x in trades] == expected


def test_a_matrix_row_reads_the_same_in_every_format() -> None:
    rng = np.random.default_rng(7)
    dense = np.where(rng.random((6, 9)) < 0.4, rng.normal(size=(6, 9)), 0.0)
    # A CSR matrix with a duplicate entry (row 2, column 3 twice): the two add up.
    duplicated = sp.csr_matrix(
        (np.array([1.5, 2.0, -4.0]), np.array([3, 3, 8]), np.array([0, 0, 0, 2, 3, 3, 3])),
        shape=(6, 9),
    )
    for matrix in (dense, sp.csr_matrix(dense), sp.csc_matrix(dense), sp.coo_matrix(dense)):
        for r in range(6):
            np.testing.assert_array_equal(report._matrix_row(matrix, r), dense[r])
    np.testing.assert_array_equal(report._matrix_row(duplicated, 2), duplicated.toarray()[2])
    assert report._matrix_row(duplicated, 2)[3] == 3.5

"""The risk-norm fix of a rounding (engine.adjust.rounding.norm_fixup).

The fix holds each norm through its tangent plus a curvature margin, so a fix it returns
must hold every norm exactly, whatever the moves; the linear rows it holds through the
moves' changes made alone. On the benchmark's cone cases where rounding used to break the
tracking-error cap (and the request went on to the integer search and a second solve),
the fix now answers, compliant and closer to the proposal.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.cases import build_case
from engine import PolicyEngine
from engine.adjust.rounding import passes
from engine.adjust.rounding.linear_rows import LinearRows
from engine.adjust.rounding.lots import lot_candidates
from engine.adjust.rounding.norm_fixup import MAX_MOVES, norm_fixup
from engine.adjust.rounding.norm_rows import NormRows, norm_gradient
from engine.adjust.rounding.tracker import swept_members
from engine.compile.conic_blocks import NormBlock
from engine.compile.layout import Layout
from engine.weights.portfolio import Snapshot
from models import PolicyDefinition
from models.typing import FloatArray
from tests.engine.adjust.rounding_cases import continuous_trades, random_layout
from tests.strategies import seeds


def _norms(layout: Layout) -> list[NormBlock]:
    return [r.block for r in layout.rowsets if isinstance(r.block, NormBlock)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=seeds())
def test_the_tangent_and_margin_bound_the_norm_from_above(seed: int) -> None:
    layout = random_layout(seed)
    snap = layout.snap
    rng = np.random.default_rng(seed)
    for block in _norms(layout):
        w = snap.weights_from_trades(continuous_trades(layout, rng, shrink_only=False))
        names = rng.choice(snap.n, size=min(MAX_MOVES, snap.n), replace=False)
        value, scale, radius, slope, reach = norm_gradient(block, w, names)
        assert value == pytest.approx(float(block.values(w)[0]), rel=1e-12, abs=1e-15)
        if radius <= 0.0:
            continue
        steps = rng.uniform(-1e-3, 1e-3, len(names))
        moved = w.copy()
        moved[names] += steps
        tangent = value + scale * float(slope @ steps) / radius
        margin = scale * float(np.abs(steps) @ reach) ** 2 / (2 * radius)
        after = float(block.values(moved)[0])
        assert tangent - 1e-15 <= after + 1e-15 * value  # convex: above its tangent
        assert after <= tangent + margin + 1e-15 * value


def _fix_case(
    seed: int, shrink_only: bool, norm_excess: float
) -> tuple[Snapshot, FloatArray, LinearRows, NormRows] | None:
    """A nearest rounding with its linear rows held at their values and its norms
    `norm_excess` (relative) past their bounds; None without a capped norm."""
    layout = random_layout(seed)
    snap = layout.snap
    t = continuous_trades(layout, np.random.default_rng(seed), shrink_only=shrink_only)
    start = lot_candidates(snap, t, shrink_only=shrink_only)[0]
    w = snap.weights_from_trades(start)
    strict = layout.strict()
    bounds = []
    for k in strict:
        block = layout.rowsets[k].block
        value = block.values(w)
        is_norm = isinstance(block, NormBlock)
        bounds.append(value - norm_excess * np.abs(value) if is_norm else value)
    members = swept_members(layout, strict, bounds)
    if members is None or not members[1]:
        return None
    return snap, start, LinearRows(members[0], snap.n), NormRows(members[1])


@pytest.mark.parametrize("shrink_only", [False, True])
def test_a_fix_holds_every_norm_and_row_with_few_one_lot_moves(shrink_only: bool) -> None:
    found = 0
    for seed in range(60):
        case = _fix_case(seed, shrink_only, 1e-7)
        if case is None:
            continue
        snap, start, rows, norms = case
        fixed = norm_fixup(rows, norms, snap, start, shrink_only=shrink_only)
        if fixed is None:
            continue
        found += 1
        w = snap.weights_from_trades(fixed)
        for block, bound in norms.norms:
            assert float(block.values(w)[0]) <= bound
        assert rows.total(w) == 0.0
        moved = np.flatnonzero(fixed != start)
        assert 0 < len(moved) <= MAX_MOVES
        np.testing.assert_allclose(np.abs(fixed - start)[moved], snap.lots[moved], rtol=1e-12)
        if shrink_only:
            proposed = snap.t[moved]
            assert np.all(np.abs(fixed[moved]) <= np.abs(proposed))
            assert np.all(fixed[moved] * proposed >= 0)
    assert found >= 3  # the check is not vacuous


def test_no_fix_when_every_norm_holds() -> None:
    for seed in range(20):
        case = _fix_case(seed, False, 0.0)
        if case is not None:
            snap, start, rows, norms = case
            assert norm_fixup(rows, norms, snap, start, shrink_only=False) is None


FIXED_REQUESTS = {2: "closer", 7: "farther", 23: "closer", 40: "closer"}
"""Benchmark requests (n = 500, cones, project, names varying) whose rounding broke the
tracking-error cap by 1e-8 to 1e-7 without the fix (4 of the first 100), and how the fix's
answer compares with the one found without it (by the integer search, or by rounding a
second solve with the cap tightened): on request 7 that one is closer, by 2.5e-6
relative."""


@pytest.fixture(scope="module")
def cone_case() -> tuple[object, list[PolicyDefinition]]:
    case = build_case(500)
    return case, case.policies["cones"]


@pytest.mark.parametrize("i", sorted(FIXED_REQUESTS))
def test_the_fix_answers_the_benchmark_requests_it_was_made_for(
    i: int, cone_case: tuple[object, list[PolicyDefinition]], monkeypatch: pytest.MonkeyPatch
) -> None:
    case, policies = cone_case
    request = case.request(  # type: ignore[attr-defined]
        i, policy_set="cones", mode="adjust", adjustment="project", traded="varying"
    )
    used: list[bool] = []

    def recorded(*args: object, **kwargs: object) -> object:
        fixed = norm_fixup(*args, **kwargs)  # type: ignore[arg-type]
        used.append(fixed is not None)
        return fixed

    monkeypatch.setattr(passes, "norm_fixup", recorded)
    with_fix = PolicyEngine().validate(request, policies).adjusted_decision
    monkeypatch.setattr(passes, "norm_fixup", lambda *a, **k: None)
    without = PolicyEngine().validate(request, policies).adjusted_decision
    assert with_fix is not None and without is not None
    assert any(used)
    assert with_fix.is_compliant and without.is_compliant
    assert not with_fix.notes  # answered from the first solve's rounding
    if FIXED_REQUESTS[i] == "closer":
        assert with_fix.distance < without.distance
    else:
        assert without.distance < with_fix.distance <= without.distance * (1 + 3e-6)

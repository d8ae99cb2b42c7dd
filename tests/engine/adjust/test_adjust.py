"""The adjuster on hand-worked cases (SPEC section 6)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine import PolicyEngine
from models import PolicyValidationResponse
from solvers import ClarabelAdapter, SolverChain
from tests.builders import instrument, policy, request
from tests.engine.compile.test_kinds import BASE

CAP = policy("cap", {"kind": "weight_bounds", "max": 0.25})
TECH = policy(
    "tech", {"kind": "group_limit", "attribute": "sector", "max": 0.35}, policy_type="SECTOR_LIMIT"
)


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine()


def _run(
    engine: PolicyEngine,
    trades: list[tuple[str, str, float]],
    policies: list[dict[str, Any]],
    **fields: Any,
) -> PolicyValidationResponse:
    return engine.validate(request(BASE, trades, cash=30_000, policies=policies, **fields))


def _trades(response: PolicyValidationResponse) -> dict[str, float]:
    assert response.adjusted_decision is not None
    return {
        t.symbol: (t.quantity if t.side.value == "BUY" else -t.quantity)
        for t in response.adjusted_decision.trades
    }


def test_scale_back_stops_at_the_cap(engine: PolicyEngine) -> None:
    response = _run(engine, [("AAA", "BUY", 100), ("DDD", "BUY", 10)], [CAP])
    assert not response.is_compliant
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant and adjusted.method.value == "scale_back"
    assert _trades(response) == pytest.approx({"AAA": 50.0, "DDD": 10.0}, abs=1e-6)
    assert adjusted.distance == pytest.approx(0.05**2, rel=1e-6)
    [violation] = [v for v in response.violations if v.breach.value == "active"]
    assert {(v.subject, v.breach.value) for v in response.violations} == {
        ("AAA", "active"),
        ("CCC", "passive"),
    }
    assert violation.suggested_adjustment is not None
    assert violation.suggested_adjustment.symbol == "AAA"
    assert violation.suggested_adjustment.quantity == pytest.approx(50.0, abs=1e-6)
    assert [(b.policy_name, b.subject) for b in adjusted.binding] == [("cap", "AAA")]
    # Relaxing the cap by e shrinks the distance (0.05 - e)^2 at rate 2 * 0.05.
    assert adjusted.binding[0].shadow_price == pytest.approx(0.1, rel=1e-4)
    assert any("Reduce BUY AAA from 100 to 50 shares (cap)" in r for r in response.recommendations)


def test_project_spreads_the_cut_over_the_group(engine: PolicyEngine) -> None:
    scaled = _run(engine, [("AAA", "BUY", 100)], [TECH], adjustment="scale_back")
    projected = _run(engine, [("AAA", "BUY", 100)], [TECH], adjustment="project")
    assert _trades(scaled) == pytest.approx({"AAA": 50.0}, abs=1e-6)
    assert _trades(projected) == pytest.approx({"AAA": 75.0, "BBB": -25.0}, abs=1e-6)
    assert projected.adjusted_decision is not None and scaled.adjusted_decision is not None
    assert projected.adjusted_decision.distance == pytest.approx(2 * 0.025**2, rel=1e-6)
    assert scaled.adjusted_decision.distance == pytest.approx(0.05**2, rel=1e-6)


def test_compliant_decision_is_not_adjusted(engine: PolicyEngine) -> None:
    response = _run(engine, [("AAA", "BUY", 10)], [CAP, TECH])
    assert response.is_compliant and response.compliance_score < 1.0  # CCC passive breach
    assert response.adjusted_decision is None
    clean = _run(engine, [("DDD", "BUY", 10)], [TECH])
    assert clean.is_compliant and clean.compliance_score == 1.0 and not clean.violations


def test_validate_mode_never_adjusts(engine: PolicyEngine) -> None:
    response = _run(engine, [("AAA", "BUY", 100)], [CAP], mode="validate")
    assert not response.is_compliant and response.adjusted_decision is None


def test_cure_passive_falls_back_to_project(engine: PolicyEngine) -> None:
    banned = policy("ban", {"kind": "restricted", "symbols": ["DDD"]})
    kept = _run(engine, [("AAA", "BUY", 10)], [banned])
    assert kept.is_compliant
    cured = _run(engine, [("AAA", "BUY", 10)], [banned], cure_passive=True)
    assert not cured.is_compliant
    assert cured.adjusted_decision is not None
    assert cured.adjusted_decision.method.value == "project"
    assert _trades(cured) == pytest.approx({"AAA": 10.0, "DDD": -100.0}, abs=1e-6)


def test_conflicting_policies_are_named_not_adjusted(engine: PolicyEngine) -> None:
    big_ccc = policy("big-ccc", {"kind": "weight_bounds", "symbols": ["CCC"], "min": 0.35})
    energy = policy(
        "energy",
        {"kind": "group_limit", "attribute": "sector", "max": 0.25},
        policy_type="SECTOR_LIMIT",
    )
    harmless = policy("cash", {"kind": "cash", "min": 0.0})
    response = _run(engine, [("CCC", "BUY", 10)], [big_ccc, energy, harmless], cure_passive=True)
    assert response.adjusted_decision is None
    assert response.infeasible is not None
    assert response.infeasible.conflicting_policies == ["big-ccc", "energy"]


def test_lot_rounding_keeps_the_decision_compliant() -> None:
    instruments = [
        instrument(s, lot_size=100, price=37.0 if s == "AAA" else 100.0)
        for s in ("AAA", "BBB", "CCC", "DDD", "EEE")
    ]
    req = request(
        {"AAA": 500, "BBB": 100, "CCC": 300, "DDD": 100},
        [("AAA", "BUY", 1000)],
        cash=41_500,
        instruments=instruments,
        policies=[CAP, TECH],
    )
    response = PolicyEngine().validate(req)
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    for trade in adjusted.trades:
        assert trade.quantity % 100 == 0
        assert trade.side.value == "BUY" and trade.quantity <= 1000


def test_every_solver_failing_fails_closed() -> None:
    class Broken(ClarabelAdapter):
        name = "CLARABEL"
        settings = {"max_iter": 0}  # noqa: RUF012

    engine = PolicyEngine(chain=SolverChain(qp=[Broken()], socp=[Broken()]))
    # The separable solver would answer this problem before the chain; this is about the chain.
    engine.adjuster.fast.separable = False
    response = engine.validate(request(BASE, [("AAA", "BUY", 100)], cash=30_000, policies=[CAP]))
    assert not response.is_compliant
    assert response.adjusted_decision is None
    assert (
        response.adjustment_error is not None and "every solver failed" in response.adjustment_error
    )


def test_compile_cache_reuses_problems_across_requests() -> None:
    engine = PolicyEngine()
    for qty in (100, 120, 140):
        response = _run(engine, [("AAA", "BUY", qty)], [CAP])
        assert _trades(response) == pytest.approx({"AAA": 50.0}, abs=1e-6)
    stats = engine.cache_stats()
    assert (stats.misses, stats.hits) == (1, 2)


def test_timings_name_every_stage(engine: PolicyEngine) -> None:
    response = _run(engine, [("AAA", "BUY", 100)], [CAP])
    assert {"resolve", "weights", "compile", "check", "adjust", "verify", "total"} <= set(
        response.timings_ms
    )
    assert np.isfinite(list(response.timings_ms.values())).all()

"""Cash per currency, currency exposure, target drift and sleeves on a EUR fund, by hand.

The fund (`tests.builders.fund`, NAV 85,500 EUR): cash EUR 50,000, USD 9,000, JPY -3,000
(EUR values); AAPL (USD) 18,000, BP (GBP) 11,500, SAP (EUR) 15,000, TOY (JPY) short -15,000;
an FX forward selling USD 9,000 (at spot) for EUR 9,200.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from engine import PolicyEngine
from engine.errors import MissingDataError
from engine.resolve.global_policy import GlobalControls
from models import GlobalPolicy, PolicyValidationResponse
from tests.builders import fund, policy

NAV = 85_500.0


def _run(
    constraint: dict[str, Any],
    trades: Sequence[tuple[str, str, float]] = (),
    fx_trades: Sequence[tuple[str, str, float]] = (),
    *,
    mode: str = "adjust",
    lots: dict[str, float] | None = None,
    **state: Any,
) -> PolicyValidationResponse:
    request = fund(
        trades, fx_trades=fx_trades, policies=[policy("p", constraint)], lots=lots, **state
    )
    return PolicyEngine().validate(request.model_copy(update={"mode": mode}))


def _found(
    response: PolicyValidationResponse,
) -> dict[tuple[str, str | None, str], tuple[float, float | None]]:
    return {
        (v.violation_type, v.subject, v.breach.value): (v.observed, v.pre_trade)
        for v in response.violations
    }


# --- cash per currency -------------------------------------------------------------------------

CASH = {"kind": "cash", "by_currency": True}


def test_an_overdraft_held_before_is_a_passive_breach() -> None:
    found = _found(_run(CASH, mode="validate"))
    assert found == {("cash.min", "JPY", "passive"): pytest.approx((-3_000 / NAV, -3_000 / NAV))}


def test_covering_a_foreign_short_spends_that_currency() -> None:
    # BUY 400 TOY costs 400 x 2,500 JPY = 6,000 EUR of yen: the overdraft grows to 9,000.
    response = _run(CASH, [("TOY", "BUY", 400)], mode="validate")
    assert not response.is_compliant
    assert _found(response) == {
        ("cash.min", "JPY", "active"): pytest.approx((-9_000 / NAV, -3_000 / NAV))
    }


def test_an_fx_trade_can_cure_an_overdraft() -> None:
    # Buy 1,000,000 JPY (6,000 EUR) with euros: yen cash +3,000 EUR, euro cash 44,000.
    response = _run(CASH, fx_trades=[("JPYEUR", "BUY", 1_000_000)], mode="validate")
    assert response.is_compliant and response.violations == []


def test_per_currency_bounds() -> None:
    constraint = {**CASH, "per_currency": {"JPY": {"min": -0.05}, "EUR": {"max": 0.5}}}
    found = _found(_run(constraint, mode="validate"))
    assert found == {("cash.max", "EUR", "passive"): pytest.approx((50_000 / NAV, 50_000 / NAV))}


def test_the_adjustment_spends_no_more_than_the_currency_allows_after_lots() -> None:
    # USD cash 9,000 EUR, floor -5% of NAV = -4,275: AAPL (180 EUR) <= 73.75, lots of 10: 70.
    constraint = {**CASH, "per_currency": {"USD": {"min": -0.05}, "JPY": {"min": -0.05}}}
    response = _run(constraint, [("AAPL", "BUY", 200)], lots={"AAPL": 10})
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    assert [(t.symbol, t.side.value, t.quantity) for t in adjusted.trades] == [
        ("AAPL", "BUY", 70.0)
    ]


def test_fx_trades_kept_when_the_security_trades_can_be_adjusted() -> None:
    # +USD 20,000 (18,000 EUR) then AAPL: 9,000 + 18,000 - 180 x = 0 at x = 150.
    response = _run(CASH, [("AAPL", "BUY", 200)], [("USDEUR", "BUY", 20_000)], lots={"AAPL": 10})
    assert _found(response)[("cash.min", "USD", "active")] == pytest.approx(
        (-9_000 / NAV, 9_000 / NAV)
    )
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    assert [(t.symbol, t.quantity) for t in adjusted.trades] == [("AAPL", 150.0)]
    assert [(f.pair, f.side.value, f.quantity) for f in adjusted.fx_trades] == [
        ("USDEUR", "BUY", 20_000.0)
    ]


# --- currency exposure -------------------------------------------------------------------------


def test_exposure_per_currency_with_hedges() -> None:
    # USD 18,000 + 9,000 - 9,000 (hedge); GBP 11,500; JPY -15,000 - 3,000.
    found = _found(_run({"kind": "currency_exposure", "max": 0.2, "min": -0.2}, mode="validate"))
    assert found == {
        ("currency_exposure.max", "USD", "passive"): pytest.approx((18_000 / NAV,) * 2),
        ("currency_exposure.min", "JPY", "passive"): pytest.approx((-18_000 / NAV,) * 2),
    }


def test_exposure_without_hedges_and_per_currency() -> None:
    constraint = {
        "kind": "currency_exposure",
        "hedges": False,
        "currencies": ["USD", "GBP"],
        "per_currency": {"USD": {"max": 0.3}, "GBP": {"max": 0.1}},
    }
    found = _found(_run(constraint, mode="validate"))
    assert found == {
        ("currency_exposure.max", "USD", "passive"): pytest.approx((27_000 / NAV,) * 2),
        ("currency_exposure.max", "GBP", "passive"): pytest.approx((11_500 / NAV,) * 2),
    }


def test_security_trades_do_not_move_currency_exposure() -> None:
    response = _run(
        {"kind": "currency_exposure", "max": 0.25}, [("AAPL", "BUY", 100)], mode="validate"
    )
    assert response.is_compliant and response.violations == []


def test_an_fx_trade_that_breaches_exposure_is_cancelled() -> None:
    # Buy USD 10,000 (9,000 EUR): USD exposure 27,000 / NAV > 25%.
    response = _run(
        {"kind": "currency_exposure", "max": 0.25},
        [("SAP", "SELL", 10)],
        [("USDEUR", "BUY", 10_000)],
    )
    assert _found(response) == {
        ("currency_exposure.max", "USD", "active"): pytest.approx((27_000 / NAV, 18_000 / NAV))
    }
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    assert adjusted.fx_trades == [] and any("FX trades cancelled" in n for n in adjusted.notes)
    assert [(t.symbol, t.quantity) for t in adjusted.trades] == [("SAP", 10.0)]


def test_total_non_base_exposure() -> None:
    # 18,000 + 11,500 - 18,000 = 11,500 before; buying 1,000,000 JPY adds 6,000.
    constraint = {"kind": "currency_exposure", "total": True, "max": 0.2}
    response = _run(constraint, fx_trades=[("JPYEUR", "BUY", 1_000_000)], mode="validate")
    assert _found(response) == {
        ("currency_exposure.max", None, "active"): pytest.approx((17_500 / NAV, 11_500 / NAV))
    }


# --- target drift --------------------------------------------------------------------------------

TARGET = {"AAPL": 0.2, "BP": 0.15, "SAP": 0.2, "NESN": 0.05}


def test_drift_per_name_and_in_total_with_analytics() -> None:
    w = {"AAPL": 18_000 / NAV, "BP": 11_500 / NAV, "SAP": 15_000 / NAV, "TOY": -15_000 / NAV}
    drift = {s: abs(w[s] - TARGET.get(s, 0.0)) for s in w} | {"NESN": 0.05}
    total = sum(drift.values())
    request = fund(
        [("TOY", "BUY", 1_000)],
        policies=[policy("p", {"kind": "target_drift", "max": 0.1, "max_total": total - 0.01})],
        target_weights=TARGET,
    ).model_copy(update={"mode": "validate", "analytics": True})
    response = PolicyEngine().validate(request)
    # Closing TOY cures its drift: the total falls by 15,000 / NAV (no active breach).
    assert _found(response) == {}
    assert response.analytics is not None
    assert response.analytics.pre_trade.drift_total == pytest.approx(total)
    assert response.analytics.pre_trade.drift_max == pytest.approx(15_000 / NAV)
    assert response.analytics.proposed.drift_total == pytest.approx(total - 15_000 / NAV)


def test_drift_grown_by_a_trade_is_active() -> None:
    found = _found(
        _run(
            {"kind": "target_drift", "max": 0.05},
            [("SAP", "SELL", 50)],
            mode="validate",
            target_weights=TARGET,
        )
    )
    assert found[("target_drift.max", "SAP", "active")] == pytest.approx(
        (abs(7_500 / NAV - 0.2), abs(15_000 / NAV - 0.2))
    )
    assert ("target_drift.max", "TOY", "passive") in found


def test_drift_needs_target_weights() -> None:
    with pytest.raises(MissingDataError, match="target_weights"):
        _run({"kind": "target_drift", "max": 0.05}, mode="validate")


# --- strategy sleeves ----------------------------------------------------------------------------

SLEEVES = [
    {"symbol": "AAPL", "quantity": 100, "strategy": "growth"},
    {"symbol": "BP", "quantity": 2_000, "strategy": "value"},
    {"symbol": "SAP", "quantity": 100, "strategy": "growth"},
    {"symbol": "TOY", "quantity": -1_000, "strategy": "value"},
]


def test_group_limits_by_sleeve() -> None:
    # growth gross 33,000 / NAV before; a growth decision opens SHEL (100 x 28.75 EUR).
    constraint = {"kind": "group_limit", "attribute": "strategy", "measure": "gross", "max": 0.38}
    request = fund([("SHEL", "BUY", 100)], policies=[policy("p", constraint)], positions=SLEEVES)
    request.decision.strategy = "growth"
    response = PolicyEngine().validate(request.model_copy(update={"mode": "validate"}))
    assert _found(response) == {
        ("group_limit.max", "growth", "active"): pytest.approx(
            ((33_000 + 2_875) / NAV, 33_000 / NAV)
        )
    }


def test_the_global_allow_list_applies_to_sleeves() -> None:
    controls = GlobalControls(
        GlobalPolicy(
            allowed_strategies=["growth"],
            max_risk_per_trade=None,
            global_min_confidence=None,
            require_confidence=False,
        )
    )
    request = fund(
        [("AAPL", "SELL", 10), ("BP", "SELL", 100)],
        policies=[policy("p", {"kind": "gross_exposure", "max": 5})],
        positions=SLEEVES,
    )
    request.decision.strategy = "growth"
    response = PolicyEngine().validate(request, controls=controls)
    assert not response.is_compliant
    assert {(v.violation_type, v.subject) for v in response.violations} == {
        ("restricted.no_trade", "BP")
    }
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant
    assert [(t.symbol, t.quantity) for t in adjusted.trades] == [("AAPL", 10.0)]


# --- a cached layout re-reads the amounts ---------------------------------------------------------


def test_a_cached_layout_serves_new_cash_rates_and_fx_trades() -> None:
    constraints = [
        {**CASH, "per_currency": {"JPY": {"min": -0.05}}},
        {"kind": "currency_exposure", "max": 0.2, "min": -0.2},
        {"kind": "currency_exposure", "total": True, "max": 0.3},
    ]
    shared = PolicyEngine()

    def answers(engine: PolicyEngine, **changes: Any) -> list[Any]:
        request = fund(
            [("TOY", "BUY", 300), ("AAPL", "SELL", 20)],
            fx_trades=changes.pop("fx", [("JPYUSD", "BUY", 200_000)]),
            policies=[policy("p", *constraints)],
            **changes,
        )
        response = engine.validate(request.model_copy(update={"mode": "validate"}))
        return [(v.violation_type, v.subject, v.observed, v.pre_trade) for v in response.violations]

    variants: list[dict[str, Any]] = [
        {},
        {"cash": {"EUR": 20_000.0, "USD": 40_000.0, "JPY": -900_000.0}},
        {"fx_rates": {"USD": 0.95, "GBP": 1.2, "JPY": 0.0059}},
        {"fx": [("USDEUR", "SELL", 5_000)]},
    ]
    for changes in variants:
        assert answers(shared, **dict(changes)) == answers(PolicyEngine(), **dict(changes))
    assert shared.cache_stats().layout_hits >= 1

"""The global policy in validation: risk mode, strategy and confidence gates, limits.

Portfolio (NAV 100,000, every price 100, no lots): AAA 200 shares (20%), BBB 100 (10%),
cash 70,000. Every number below is worked out from that.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import PolicyEngine
from engine.resolve.global_policy import GlobalControls
from models import GlobalPolicy, PolicyDefinition, PolicyValidationRequest
from tests.builders import policy, request

HOLDINGS = {"AAA": 200, "BBB": 100}
LOOSE = PolicyDefinition.model_validate(policy("cap", {"kind": "weight_bounds", "max": 0.9}))
DEFENSIVE_CAP = PolicyDefinition.model_validate(
    policy("defensive-cap", {"kind": "weight_bounds", "max": 0.25}, when='risk_mode == "DEFENSIVE"')
)


def _controls(version: int = 7, **fields: Any) -> GlobalControls:
    """A global policy with no limits but those given."""
    base: dict[str, Any] = {
        "max_risk_per_trade": None,
        "max_positions": None,
        "global_min_confidence": None,
    }
    return GlobalControls(GlobalPolicy.model_validate({**base, **fields}), version)


def _request(
    trades: list[tuple[str, str, float]], *, mode: str = "adjust", **decision: Any
) -> PolicyValidationRequest:
    req = request(HOLDINGS, trades, cash=70_000, mode=mode, adjustment="scale_back")
    return req.model_copy(update={"decision": req.decision.model_copy(update=decision)})


def _validate(
    req: PolicyValidationRequest,
    controls: GlobalControls,
    policies: list[PolicyDefinition] | None = None,
) -> Any:
    return PolicyEngine().validate(req, policies or [LOOSE], controls=controls)


def _types(response: Any) -> set[tuple[str, str | None]]:
    return {(v.violation_type, v.subject) for v in response.violations}


def test_the_stored_risk_mode_is_what_conditions_read() -> None:
    req = _request([("AAA", "BUY", 100)])  # AAA 30%: above the defensive cap of 25%
    req = req.model_copy(update={"context": {"risk_mode": "NORMAL"}})
    defensive = _validate(req, _controls(risk_mode="DEFENSIVE"), [LOOSE, DEFENSIVE_CAP])
    assert _types(defensive) == {("weight_bounds.max", "AAA")}
    assert defensive.risk_mode.model_dump() == {
        "mode": "DEFENSIVE",
        "source": "global_policy",
        "ignored_request_value": "NORMAL",
    }
    assert defensive.global_policy_version == 7
    normal = _validate(req, _controls(risk_mode="NORMAL"), [LOOSE, DEFENSIVE_CAP])
    assert normal.is_compliant and normal.risk_mode.ignored_request_value is None


def test_a_what_if_run_uses_its_own_risk_mode() -> None:
    inline = [p.model_dump(mode="json") for p in (LOOSE, DEFENSIVE_CAP)]
    body = _request([("AAA", "BUY", 100)]).model_dump(mode="json")
    body.update(policies=inline, context={"risk_mode": "NORMAL"})
    req = PolicyValidationRequest.model_validate(body)
    response = PolicyEngine().validate(req, controls=_controls(risk_mode="DEFENSIVE"))
    assert response.is_compliant
    assert response.risk_mode.model_dump() == {
        "mode": "NORMAL",
        "source": "request_context",
        "ignored_request_value": None,
    }
    body["context"] = {}
    req = PolicyValidationRequest.model_validate(body)
    response = PolicyEngine().validate(req, controls=_controls(risk_mode="DEFENSIVE"))
    assert not response.is_compliant and response.risk_mode.source == "global_policy"


@pytest.mark.parametrize(
    ("strategy", "closed"), [("momentum", True), (None, True), ("value", False)]
)
def test_the_strategy_gate_halts_every_trade(strategy: str | None, closed: bool) -> None:
    req = _request([("AAA", "BUY", 10), ("BBB", "SELL", 10)], strategy=strategy)
    response = _validate(req, _controls(allowed_strategies=["value", "carry"]))
    if not closed:
        assert response.is_compliant and response.violations == []
        return
    assert not response.is_compliant
    assert _types(response) == {("strategy_not_allowed", "AAA"), ("strategy_not_allowed", "BBB")}
    assert all(v.enforcement_level == "strict" for v in response.violations)
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant and adjusted.trades == []
    assert "global-policy.strategy" in response.policies_checked


@pytest.mark.parametrize(
    ("confidence", "require", "closed"),
    [(0.69, True, True), (0.70, True, False), (0.95, True, False), (None, True, True),
     (None, False, False)],
)  # fmt: skip
def test_the_confidence_gate(confidence: float | None, require: bool, closed: bool) -> None:
    req = _request([("AAA", "BUY", 10)], confidence=confidence)
    controls = _controls(global_min_confidence=0.70, require_confidence=require)
    response = _validate(req, controls)
    assert response.is_compliant is not closed
    if closed:
        [violation] = response.violations
        assert violation.violation_type == "confidence_below_minimum"
        assert response.adjusted_decision.trades == []


def test_symbols_outside_the_allowed_list_may_be_sold_not_bought() -> None:
    controls = _controls(allowed_symbols=["AAA"])
    sold = _validate(_request([("BBB", "SELL", 50), ("AAA", "BUY", 10)]), controls)
    assert sold.is_compliant
    bought = _validate(_request([("BBB", "BUY", 50), ("AAA", "BUY", 10)]), controls)
    assert _types(bought) == {("restricted.no_buy", "BBB")}
    # scale_back drops exactly the buy of BBB and keeps the buy of AAA.
    trades = {(t.symbol, t.side, t.quantity) for t in bought.adjusted_decision.trades}
    assert trades == {("AAA", "BUY", 10.0)}


def test_the_risk_per_trade_uses_the_risk_model_when_given() -> None:
    controls = _controls(max_risk_per_trade=0.01)
    # Without a risk model the weight change itself: buying 15 shares moves AAA by 1.5%.
    plain = _validate(_request([("AAA", "BUY", 15)]), controls)
    [violation] = plain.violations
    assert violation.violation_type == "trade_risk.max"
    assert violation.observed == pytest.approx(0.015, abs=1e-12)
    assert "no risk model" in violation.description
    # With one: AAA's volatility is sqrt(0.04 + 0.0025) = 0.2062; 1.5% x 0.2062 = 0.0031.
    risk = {
        "factor_loadings": {"AAA": [1.0], "BBB": [1.0]},
        "factor_covariance": [[0.04]],
        "specific_variance": {"AAA": 0.0025, "BBB": 0.0025},
    }
    body = _request([("AAA", "BUY", 15)]).model_dump(mode="json")
    body["portfolio_state"]["risk_model"] = risk
    with_model = _validate(PolicyValidationRequest.model_validate(body), controls)
    assert with_model.is_compliant
    body["decision"]["trades"][0]["quantity"] = 60  # 6% x 0.2062 = 0.01237 > 0.01
    breached = _validate(PolicyValidationRequest.model_validate(body), controls)
    [violation] = breached.violations
    assert violation.observed == pytest.approx(0.06 * (0.0425**0.5), rel=1e-9)
    assert "volatility 20.62%" in violation.description


def test_no_global_policy_changes_nothing() -> None:
    req = _request([("AAA", "BUY", 10)])
    response = PolicyEngine().validate(req, [LOOSE])
    assert response.is_compliant and response.risk_mode is None
    assert response.global_policy_version is None


def test_the_default_global_policy_checks_every_control() -> None:
    controls = GlobalControls(GlobalPolicy(), 1)  # NORMAL, 1% per trade, 5 positions, 0.70
    small = _request([("AAA", "BUY", 5)], confidence=0.8)  # 0.5% of NAV
    assert _validate(small, controls).is_compliant
    names = {
        "global-policy.confidence",
        "global-policy.max_positions",
        "global-policy.max_risk_per_trade",
    }
    unsure = _validate(_request([("AAA", "BUY", 5)]), controls)
    assert names <= set(unsure.policies_checked)
    assert [v.violation_type for v in unsure.violations] == ["confidence_below_minimum"]
    wide = _request([(s, "BUY", 5) for s in ("CCC", "DDD", "EEE", "FFF")], confidence=0.8)
    assert [v.violation_type for v in _validate(wide, controls).violations] == ["max_positions.max"]

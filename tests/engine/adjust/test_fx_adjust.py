"""Adjusted decisions under the currency rows comply, after lots, re-validated from scratch."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import PolicyEngine
from models import PolicyValidationRequest
from tests.builders import fund, policy

NAMES = ("AAPL", "BP", "SAP", "TOY", "SHEL")
PAIRS = ("USDEUR", "JPYEUR", "GBPUSD", "EURJPY")

trades = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(["BUY", "SELL"]), st.integers(1, 400)),
    min_size=1,
    max_size=4,
)
fx_trades = st.lists(
    st.tuples(st.sampled_from(PAIRS), st.sampled_from(["BUY", "SELL"]), st.integers(1, 40_000)),
    max_size=2,
)
lots = st.dictionaries(st.sampled_from(NAMES), st.sampled_from([0, 1, 10, 100]))


def _constraints(cash_floor: float, exposure: float, drift: float) -> list[dict[str, Any]]:
    return [
        {"kind": "cash", "by_currency": True, "min": -cash_floor},
        {"kind": "currency_exposure", "min": -exposure, "max": exposure},
        {"kind": "currency_exposure", "total": True, "max": 2 * exposure},
        {"kind": "target_drift", "max": drift},
        {"kind": "weight_bounds", "max": 0.3, "min": -0.3},
    ]


def _replayed(request: PolicyValidationRequest, engine: PolicyEngine) -> bool:
    """The adjusted decision, sent as a new decision: is it compliant?"""
    adjusted = request.model_copy(deep=True)
    response = engine.validate(request)
    decision = response.adjusted_decision
    assert decision is not None
    adjusted.decision.trades = decision.trades
    adjusted.decision.fx_trades = decision.fx_trades
    return engine.validate(adjusted.model_copy(update={"mode": "validate"})).is_compliant


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    trades=trades,
    fx=fx_trades,
    lots=lots,
    cash_floor=st.sampled_from([0.0, 0.02, 0.1]),
    exposure=st.sampled_from([0.15, 0.25, 0.4]),
    drift=st.sampled_from([0.05, 0.2]),
    adjustment=st.sampled_from(["auto", "scale_back", "project"]),
    cure_passive=st.booleans(),
)
def test_adjusted_decisions_comply_after_lots(
    trades: list[tuple[str, str, int]],
    fx: list[tuple[str, str, int]],
    lots: dict[str, float],
    cash_floor: float,
    exposure: float,
    drift: float,
    adjustment: str,
    cure_passive: bool,
) -> None:
    request = fund(
        trades,
        fx_trades=fx,
        lots=lots,
        policies=[policy("p", *_constraints(cash_floor, exposure, drift))],
        target_weights={"AAPL": 0.2, "BP": 0.15, "SAP": 0.2, "TOY": -0.15},
    ).model_copy(update={"adjustment": adjustment, "cure_passive": cure_passive})
    engine = PolicyEngine()
    response = engine.validate(request)
    if response.is_compliant:
        assert response.adjusted_decision is None
        return
    adjusted = response.adjusted_decision
    if adjusted is None:
        # Only with cure_passive (a passive breach no trade can cure), or under project
        # when a bound is already breached: the answer says why.
        assert response.infeasible is not None or response.adjustment_error
        return
    assert adjusted.is_compliant
    assert _replayed(request, engine)
    if adjusted.fx_trades:
        assert adjusted.fx_trades == request.decision.fx_trades

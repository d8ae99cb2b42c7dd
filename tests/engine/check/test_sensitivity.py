"""Sensitivity: the limit relaxations of a non-compliant decision, and the shadow prices.

Relaxations are held to validate itself (relaxing by the reported amount clears the row,
a little less does not); shadow prices to a central finite difference of the adjustment's
distance in the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine import PolicyEngine
from models import LimitRelaxation, PolicyValidationResponse
from tests.builders import policy, request
from tests.engine.compile.test_kinds import BASE, RISK

# BASE at 100 a share with 30,000 cash: NAV 100,000; AAA 20%, BBB 10% (Tech 30%), CCC 30%
# (Energy), DDD 10%; cash 30%.


def cap(limit: float) -> dict[str, Any]:
    return policy("cap", {"kind": "weight_bounds", "max": limit})


def tech(limit: float) -> dict[str, Any]:
    return policy(
        "tech",
        {"kind": "group_limit", "attribute": "sector", "max": limit},
        policy_type="SECTOR_LIMIT",
    )


def cash_floor(limit: float) -> dict[str, Any]:
    return policy("cash-floor", {"kind": "cash", "min": limit}, policy_type="INVESTMENT_MANDATE")


def turnover(limit: float) -> dict[str, Any]:
    return policy("turnover", {"kind": "turnover", "max": limit}, policy_type="REGULATORY")


def vol(limit: float) -> dict[str, Any]:
    return policy("vol", {"kind": "volatility", "max": limit}, policy_type="RISK_LIMIT")


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


def _relaxations(response: PolicyValidationResponse) -> dict[str, LimitRelaxation]:
    assert response.sensitivity is not None
    return {r.policy_name: r for r in response.sensitivity.relaxations}


def test_a_single_breach_is_cleared_by_its_excess_alone(engine: PolicyEngine) -> None:
    response = _run(engine, [("AAA", "BUY", 100)], [cap(0.25)], mode="validate")
    (relaxation,) = _relaxations(response).values()
    assert relaxation.subject == "AAA" and relaxation.unit == "weight"
    assert relaxation.relaxed_limit == pytest.approx(0.30)
    assert relaxation.relaxation == pytest.approx(0.05) and relaxation.sufficient_alone
    assert _run(engine, [("AAA", "BUY", 100)], [cap(relaxation.relaxed_limit)]).is_compliant
    tighter = relaxation.relaxed_limit - 1e-7
    assert not _run(engine, [("AAA", "BUY", 100)], [cap(tighter)]).is_compliant


def test_two_breaches_need_the_joint_relaxation(engine: PolicyEngine) -> None:
    trades = [("AAA", "BUY", 100)]  # AAA 30% > 25%, Tech 40% > 35%
    response = _run(engine, trades, [cap(0.25), tech(0.35)], mode="validate")
    found = _relaxations(response)
    assert set(found) == {"cap", "tech"}
    assert not any(r.sufficient_alone for r in found.values())
    assert found["tech"].relaxation == pytest.approx(0.05)
    relaxed_cap, relaxed_tech = found["cap"].relaxed_limit, found["tech"].relaxed_limit
    assert not _run(engine, trades, [cap(relaxed_cap), tech(0.35)], mode="validate").is_compliant
    assert not _run(engine, trades, [cap(0.25), tech(relaxed_tech)], mode="validate").is_compliant
    assert _run(engine, trades, [cap(relaxed_cap), tech(relaxed_tech)]).is_compliant


def test_worsening_a_passive_breach_needs_the_whole_excess(engine: PolicyEngine) -> None:
    # CCC is 30% before trading (a passive breach of 25%); buying 10 more makes it active.
    response = _run(engine, [("CCC", "BUY", 10)], [cap(0.25)], mode="validate")
    (relaxation,) = _relaxations(response).values()
    assert relaxation.relaxation == pytest.approx(0.06)  # to 31%, not merely 1%
    assert _run(engine, [("CCC", "BUY", 10)], [cap(0.31)]).is_compliant
    assert not _run(engine, [("CCC", "BUY", 10)], [cap(0.305)], mode="validate").is_compliant


def test_a_min_is_relaxed_downwards(engine: PolicyEngine) -> None:
    response = _run(engine, [("DDD", "BUY", 100)], [cash_floor(0.25)], mode="validate")
    (relaxation,) = _relaxations(response).values()
    assert relaxation.relaxed_limit == pytest.approx(0.20)
    assert relaxation.limit == 0.25
    assert relaxation.relaxation == pytest.approx(0.05)


def test_risk_rows_relax_in_risk_units(engine: PolicyEngine) -> None:
    response = _run(engine, [("AAA", "BUY", 300)], [vol(0.05)], risk_model=RISK, mode="validate")
    (relaxation,) = _relaxations(response).values()
    assert relaxation.unit == "risk" and relaxation.relaxed_limit > 0.05
    relaxed = [vol(relaxation.relaxed_limit)]
    assert _run(engine, [("AAA", "BUY", 300)], relaxed, risk_model=RISK).is_compliant


def test_compliant_decisions_have_no_sensitivity(engine: PolicyEngine) -> None:
    assert _run(engine, [("AAA", "BUY", 10)], [cap(0.25)]).sensitivity is None
    passive_only = _run(engine, [("CCC", "SELL", 10)], [cap(0.25)])
    assert passive_only.is_compliant and passive_only.sensitivity is None


def _distance(response: PolicyValidationResponse) -> float:
    assert response.adjusted_decision is not None and response.adjusted_decision.is_compliant
    return response.adjusted_decision.distance


SHADOW_CASES: list[tuple[str, Callable[[float], dict[str, Any]], float, int, Any]] = [
    # (id, policy of a limit, the limit, +1 for a max / -1 for a min, trades and fields)
    ("cap scale_back", cap, 0.25, 1, ([("AAA", "BUY", 100)], {})),
    ("cap project", cap, 0.25, 1, ([("AAA", "BUY", 100)], {"adjustment": "project"})),
    (
        "sector project",
        tech,
        0.35,
        1,
        ([("AAA", "BUY", 60), ("BBB", "BUY", 40)], {"adjustment": "project"}),
    ),
    ("cash floor", cash_floor, 0.25, -1, ([("AAA", "BUY", 40), ("DDD", "BUY", 40)], {})),
    ("turnover", turnover, 0.05, 1, ([("AAA", "BUY", 60), ("DDD", "SELL", 30)], {})),
    # Volatility 13.2% before, 20.7% as proposed: a limit between the two binds.
    ("volatility", vol, 0.16, 1, ([("AAA", "BUY", 300)], {"risk_model": RISK})),
]


@pytest.mark.parametrize(
    ("make", "limit", "sense", "setup"),
    [case[1:] for case in SHADOW_CASES],
    ids=[case[0] for case in SHADOW_CASES],
)
def test_shadow_price_is_the_marginal_distance_of_a_relaxation(
    engine: PolicyEngine,
    make: Callable[[float], dict[str, Any]],
    limit: float,
    sense: int,
    setup: Any,
) -> None:
    trades, fields = setup
    response = _run(engine, trades, [make(limit)], **fields)
    assert response.adjusted_decision is not None
    (binding,) = response.adjusted_decision.binding
    shadow = binding.shadow_price
    assert shadow > 0
    eps = 1e-5
    # Relaxing moves a max up and a min down; the distance falls at the shadow price.
    looser = _distance(_run(engine, trades, [make(limit + sense * eps)], **fields))
    tighter = _distance(_run(engine, trades, [make(limit - sense * eps)], **fields))
    slope = (tighter - looser) / (2 * eps)
    assert slope == pytest.approx(shadow, rel=2e-3, abs=1e-7)

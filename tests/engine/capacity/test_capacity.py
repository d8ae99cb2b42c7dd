"""Capacity (engine.capacity.analyzer): exact to the lot, checked against validate itself.

The property every answer must have: adding the reported quantity to the base decision is
compliant by `PolicyEngine.validate`, adding one lot more is not, and the strict rows that
block at one lot more are exactly the reported binding ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from engine import InputError, PolicyEngine
from engine.capacity.analyzer import FRACTIONAL_STEP, largest_feasible
from models import BreachKind, EnforcementLevel, PolicyValidationRequest
from models.capacity import CapacityLimit, CapacityRequest, CapacityResponse, CapacityStatus
from solvers import ClarabelAdapter, SolverChain
from tests.builders import fund, instrument, policy, request
from tests.engine.compile.test_kinds import BASE, RISK
from tests.strategies import cases

CAP = policy("cap", {"kind": "weight_bounds", "max": 0.25})
LONG_CAP = policy("long-cap", {"kind": "weight_bounds", "min": 0.0, "max": 0.25})
TECH = policy(
    "tech", {"kind": "group_limit", "attribute": "sector", "max": 0.35}, policy_type="SECTOR_LIMIT"
)
CASH_FLOOR = policy("cash-floor", {"kind": "cash", "min": 0.25}, policy_type="INVESTMENT_MANDATE")
TURNOVER = policy("turnover", {"kind": "turnover", "max": 0.1}, policy_type="REGULATORY")
VOL = policy("vol", {"kind": "volatility", "max": 0.2}, policy_type="RISK_LIMIT")
LOT = 10.0


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine()


def _state(lot: float = LOT, **fields: Any) -> dict[str, Any]:
    instruments = [instrument(s, lot_size=lot) for s in ("AAA", "BBB", "CCC", "DDD", "EEE")]
    req = request(BASE, [], cash=30_000, instruments=instruments, **fields)
    return req.portfolio_state.model_dump(mode="json")


def _capacity(
    engine: PolicyEngine,
    policies: list[dict[str, Any]],
    *,
    trades: list[tuple[str, str, float]] | None = None,
    symbols: list[str] | None = None,
    state: dict[str, Any] | None = None,
) -> tuple[CapacityResponse, dict[str, Any]]:
    body: dict[str, Any] = {"portfolio_state": state or _state(), "policies": policies}
    if symbols is not None:
        body["symbols"] = symbols
    if trades is not None:
        body["decision"] = _decision(trades)
    return engine.capacity(CapacityRequest.model_validate(body)), body


def _decision(trades: list[tuple[str, str, float]], portfolio: str = "p-1") -> dict[str, Any]:
    return {
        "decision_id": "cap-1",
        "portfolio_id": portfolio,
        "trades": [{"symbol": s, "side": side, "quantity": q} for s, side, q in trades],
    }


def _blocking(
    engine: PolicyEngine, body: dict[str, Any], symbol: str, side: str, quantity: float
) -> set[tuple[str, str, str | None]] | None:
    """The blocking (policy, row, subject) rows of the base plus one extra trade (None: ok)."""
    decision = body.get("decision") or _decision([], body["portfolio_state"]["portfolio_id"])
    trades = list(decision["trades"])
    if quantity > 0:
        trades.append({"symbol": symbol, "side": side, "quantity": quantity})
    req = PolicyValidationRequest.model_validate(
        {
            "decision": {**decision, "trades": trades},
            "portfolio_state": body["portfolio_state"],
            "policies": body["policies"],
            "applicable_policies": body.get("applicable_policies"),
            "mode": "validate",
        }
    )
    response = engine.validate(req)
    if response.is_compliant:
        return None
    return {
        (v.policy_name, v.violation_type, v.subject)
        for v in response.violations
        if v.enforcement_level is EnforcementLevel.STRICT and v.breach is BreachKind.ACTIVE
    }


def assert_exact(engine: PolicyEngine, body: dict[str, Any], response: CapacityResponse) -> None:
    """Every limited answer: compliant at `shares`, blocked at one lot more, by `binding`."""
    for entry in response.symbols:
        lot = entry.lot_size if entry.lot_size > 0 else FRACTIONAL_STEP
        for side, limit in (("BUY", entry.buy), ("SELL", entry.sell)):
            if limit.status is not CapacityStatus.LIMITED:
                continue
            assert limit.shares is not None and limit.shares >= 0
            where = f"{side} {entry.symbol} {limit.shares}"
            assert _blocking(engine, body, entry.symbol, side, limit.shares) is None, where
            blocked = _blocking(engine, body, entry.symbol, side, limit.shares + lot)
            reported = {(b.policy_name, b.violation_type, b.subject) for b in limit.binding}
            assert blocked == reported, where


def _limit(response: CapacityResponse, symbol: str, side: str) -> CapacityLimit:
    (entry,) = [e for e in response.symbols if e.symbol == symbol]
    return entry.buy if side == "buy" else entry.sell


def _binding(limit: CapacityLimit) -> set[tuple[str, str | None]]:
    return {(b.policy_name, b.subject) for b in limit.binding}


def test_per_name_cap_buy_and_unlimited_sale(engine: PolicyEngine) -> None:
    response, body = _capacity(engine, [CAP], symbols=["AAA", "CCC"])
    buy = _limit(response, "AAA", "buy")
    assert buy.status is CapacityStatus.LIMITED and buy.shares == 50  # 20% -> 25% of 100k
    assert buy.weight == pytest.approx(0.05) and buy.post_weight == pytest.approx(0.25)
    assert _binding(buy) == {("cap", "AAA")}
    # CCC is 30% already: a passive breach may not get worse, so no buy at all.
    assert _limit(response, "CCC", "buy").shares == 0
    sale = _limit(response, "AAA", "sell")
    assert sale.status is CapacityStatus.UNLIMITED and sale.shares is None
    assert "no strict policy" in sale.reason
    assert_exact(engine, body, response)


def test_long_only_stops_the_sale_at_the_holding(engine: PolicyEngine) -> None:
    response, body = _capacity(engine, [LONG_CAP])
    assert [e.symbol for e in response.symbols] == ["AAA", "BBB", "CCC", "DDD"]
    for symbol, held in BASE.items():
        sale = _limit(response, symbol, "sell")
        assert sale.shares == held and _binding(sale) == {("long-cap", symbol)}
    assert_exact(engine, body, response)


def test_sector_cap_binds_buys_of_every_member(engine: PolicyEngine) -> None:
    response, body = _capacity(engine, [TECH], symbols=["AAA", "BBB", "EEE"])
    for symbol in ("AAA", "BBB"):  # Tech is 30% of 35%
        buy = _limit(response, symbol, "buy")
        assert buy.shares == 50 and _binding(buy) == {("tech", "Tech")}
    # EEE is not held: it is sized in a universe of its own; Energy (CCC) is at 30%.
    eee = _limit(response, "EEE", "buy")
    assert eee.shares == 50 and _binding(eee) == {("tech", "Energy")}
    assert_exact(engine, body, response)


def test_cash_floor_limits_every_buy(engine: PolicyEngine) -> None:
    response, body = _capacity(engine, [CASH_FLOOR])
    for entry in response.symbols:  # cash 30% with a 25% floor: 5,000 to spend
        assert entry.buy.shares == 50 and _binding(entry.buy) == {("cash-floor", None)}
        assert entry.sell.status is CapacityStatus.UNLIMITED
    assert_exact(engine, body, response)


def test_turnover_counts_the_base_decision(engine: PolicyEngine) -> None:
    response, body = _capacity(engine, [TURNOVER], trades=[("AAA", "BUY", 50)])
    assert response.base == "decision" and response.base_compliant
    aaa = next(e for e in response.symbols if e.symbol == "AAA")
    assert aaa.quantity == 250 and aaa.weight == pytest.approx(0.25)
    assert aaa.buy.shares == 50 and aaa.sell.shares == 150  # selling first undoes the buy
    assert _limit(response, "BBB", "buy").shares == 50
    assert_exact(engine, body, response)


def test_volatility_cap_is_exact(engine: PolicyEngine) -> None:
    state = _state(lot=1.0, risk_model=RISK)
    response, body = _capacity(engine, [VOL, TECH], state=state)
    limited = [
        limit
        for e in response.symbols
        for limit in (e.buy, e.sell)
        if limit.status is CapacityStatus.LIMITED
    ]
    assert any(b.policy_name == "vol" for limit in limited for b in limit.binding)
    assert_exact(engine, body, response)


def test_fractional_instruments_are_exact_to_the_resolution(engine: PolicyEngine) -> None:
    response, body = _capacity(engine, [LONG_CAP, TECH], state=_state(lot=0.0))
    assert _limit(response, "AAA", "buy").shares == pytest.approx(50, abs=1e-5)
    assert_exact(engine, body, response)


def test_a_non_compliant_base_is_not_sized(engine: PolicyEngine) -> None:
    response, _ = _capacity(engine, [CAP], trades=[("AAA", "BUY", 100)])
    assert not response.base_compliant
    for entry in response.symbols:
        for limit in (entry.buy, entry.sell):
            assert limit.status is CapacityStatus.NOT_EVALUATED and limit.shares is None


def test_no_strict_policy_means_unlimited(engine: PolicyEngine) -> None:
    advisory = policy("cap", {"kind": "weight_bounds", "max": 0.25}, enforcement_level="advisory")
    response, _ = _capacity(engine, [advisory])
    for entry in response.symbols:
        assert entry.buy.status is entry.sell.status is CapacityStatus.UNLIMITED


def test_solver_failure_falls_back_to_the_exact_search() -> None:
    class Broken(ClarabelAdapter):
        name = "CLARABEL"
        settings = {"max_iter": 0}  # noqa: RUF012

    broken = PolicyEngine(chain=SolverChain(qp=[Broken()], socp=[Broken()]))
    response, body = _capacity(broken, [CAP, TECH, CASH_FLOOR])
    assert _limit(response, "AAA", "buy").shares == 50
    assert all(e.buy.solver is None for e in response.symbols)
    assert_exact(PolicyEngine(), body, response)


def test_unknown_symbol_names_the_field(engine: PolicyEngine) -> None:
    with pytest.raises(InputError) as raised:
        _capacity(engine, [CAP], symbols=["AAA", "ZZZ"])
    assert raised.value.field == "symbols[1]"


def test_compiled_problem_is_shared_by_symbols_and_directions(engine: PolicyEngine) -> None:
    fresh = PolicyEngine()
    _capacity(fresh, [CAP, TECH])
    _capacity(fresh, [CAP, TECH], state=_state(lot=100.0))
    problems = fresh.capacity_analyzer.problems
    assert (problems.misses, problems.hits) == (1, 1)


@pytest.mark.parametrize("boundary", [0, 1, 7, 1000, 2**40])
@pytest.mark.parametrize("guess", [0, 1, 6, 7, 8, 5000, 2**45])
def test_largest_feasible_finds_the_boundary_from_any_guess(boundary: int, guess: int) -> None:
    calls: list[int] = []

    def feasible(k: int) -> bool:
        calls.append(k)
        assert 0 <= k <= 2**50
        return k <= boundary

    assert largest_feasible(feasible, guess, 2**50) == boundary
    assert len(calls) <= 2 * 52 + 2
    if guess == boundary:
        assert len(calls) <= 2


def test_largest_feasible_reports_the_cap() -> None:
    assert largest_feasible(lambda k: True, 3, 100) == 100
    assert largest_feasible(lambda k: k <= 100, 500, 100) == 100


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(strict_only=False, mode="validate"))
def test_random_portfolios_are_exact(engine: PolicyEngine, case: Any) -> None:
    req, policies = case
    rng = np.random.default_rng(len(req["portfolio_state"]["positions"]))
    held = [p["symbol"] for p in req["portfolio_state"]["positions"] if p["quantity"] != 0]
    symbols = sorted(rng.choice(held, size=min(3, len(held)), replace=False).tolist())
    body: dict[str, Any] = {
        "portfolio_state": req["portfolio_state"],
        "policies": policies,
        "symbols": symbols,
    }
    if req.get("applicable_policies"):
        body["applicable_policies"] = req["applicable_policies"]
    try:
        response = engine.capacity(CapacityRequest.model_validate(body))
    except InputError:
        return  # the case misses data a policy needs; validate refuses it the same way
    assert response.base_compliant  # the current portfolio never blocks itself
    assert_exact(engine, body, response)


def test_ucits_aggregate_capacity_is_exact_although_the_rule_is_not_convex(
    engine: PolicyEngine,
) -> None:
    # Four issuers at 9% (36% above the 5% threshold) and EEE at 4.5%, NAV 100,000.
    ucits = policy("ucits", {"kind": "ucits_5_10_40"}, policy_type="REGULATORY")
    held = {"AAA": 90, "BBB": 90, "CCC": 90, "DDD": 90, "EEE": 45}
    instruments = [instrument(s, lot_size=1) for s in held]
    state = request(held, [], cash=59_500, instruments=instruments).portfolio_state
    response, body = _capacity(engine, [ucits], state=state.model_dump(mode="json"))
    # EEE may reach 5% exactly; above it the issuers over 5% would weigh 41% > 40%.
    eee = _limit(response, "EEE", "buy")
    assert eee.shares == 5 and _binding(eee) == {("ucits", None)}
    assert {b.violation_type for b in eee.binding} == {"ucits_5_10_40.aggregate"}
    # AAA stops at its own 10% cap (aggregate 37% stays inside 40%).
    aaa = _limit(response, "AAA", "buy")
    assert aaa.shares == 10 and _binding(aaa) == {("ucits", "AAA Inc")}
    assert_exact(engine, body, response)


def test_capacity_beyond_fx_trades_is_refused_naming_them() -> None:
    state = fund().portfolio_state.model_dump(mode="json")
    request = CapacityRequest.model_validate(
        {
            "portfolio_state": state,
            "policies": [policy("p", {"kind": "cash", "by_currency": True})],
            "symbols": ["AAPL"],
            "decision": {
                "decision_id": "c-1",
                "portfolio_id": "eu-fund",
                "fx_trades": [{"pair": "USDEUR", "side": "BUY", "quantity": 10}],
            },
        }
    )
    with pytest.raises(InputError) as caught:
        PolicyEngine().capacity(request)
    assert caught.value.field == "decision.fx_trades"

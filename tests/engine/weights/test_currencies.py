"""NAV and weights across currencies, by hand; a single-currency state answers as before."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from engine import PolicyEngine
from engine.errors import InputError
from engine.weights.portfolio import snapshot_of
from models import PolicyDefinition, PolicyValidationRequest
from tests.builders import fund
from tests.strategies import cases

NAV = 85_500.0
"""EUR: cash 50,000 + 9,000 - 3,000; AAPL 18,000, BP 11,500, SAP 15,000, TOY -15,000."""


def test_nav_and_weights_are_in_the_base_currency() -> None:
    snap = snapshot_of(fund())
    assert snap.symbols == ("AAPL", "BP", "SAP", "TOY")
    assert snap.nav == pytest.approx(NAV, rel=1e-12)
    assert snap.cash == pytest.approx(56_000.0, rel=1e-12)
    # Base-currency prices: USD 200 x 0.9, GBP 5 x 1.15, EUR 150, JPY 2,500 x 0.006.
    assert snap.prices == pytest.approx([180.0, 5.75, 150.0, 15.0], rel=1e-12)
    expected = np.array([18_000.0, 11_500.0, 15_000.0, -15_000.0]) / NAV
    assert snap.w0 == pytest.approx(expected, rel=1e-12)
    assert snap.money.cash == pytest.approx({"EUR": 50_000.0, "USD": 9_000.0, "JPY": -3_000.0})
    assert snap.money.currencies == ("USD", "GBP", "EUR", "JPY")
    assert snap.money.in_use() == ["EUR", "GBP", "JPY", "USD"]


def test_a_trade_in_a_foreign_short_position_moves_its_weight_in_base() -> None:
    # Cover 400 of the 1,000 TOY short and sell 500 BP: TOY -600 x 15 = -9,000 EUR.
    snap = snapshot_of(fund([("TOY", "BUY", 400), ("BP", "SELL", 500)]))
    assert snap.nav == pytest.approx(NAV, rel=1e-12)  # trades execute at the price
    assert snap.w_hat == pytest.approx(
        np.array([18_000.0, 1_500 * 5.75, 15_000.0, -9_000.0]) / NAV, rel=1e-12
    )
    assert snap.trades_from_weights(snap.w_hat) == pytest.approx([0.0, -500.0, 0.0, 400.0])


def test_an_fx_trade_moves_cash_between_currencies_and_keeps_nav() -> None:
    # Buy 1,000 GBP paying JPY at the cross 1.15 / 0.006: worth 1,150 EUR either way.
    snap = snapshot_of(fund(fx_trades=[("GBPJPY", "BUY", 1_000)]))
    assert snap.nav == pytest.approx(NAV, rel=1e-12)
    assert snap.money.flows == pytest.approx({"GBP": 1_150.0, "JPY": -1_150.0})
    assert snap.w_hat == pytest.approx(snap.w0)


def test_hedges_are_valued_at_their_contract_rate() -> None:
    # SELL USDEUR 10,000 at 0.92: USD -10,000 x 0.9 = -9,000, EUR +10,000 x 0.92 = 9,200.
    snap = snapshot_of(fund())
    assert snap.money.hedges == pytest.approx({"USD": -9_000.0, "EUR": 9_200.0})


def test_cash_as_a_number_is_base_currency_cash() -> None:
    snap = snapshot_of(fund(cash=56_000.0))
    assert snap.nav == pytest.approx(NAV, rel=1e-12)
    assert snap.money.cash == {"EUR": 56_000.0}


@pytest.mark.parametrize(
    ("state", "field", "named"),
    [
        ({"fx_rates": {"USD": 0.9, "JPY": 0.006}}, "portfolio_state.fx_rates", "GBP"),
        ({"fx_rates": {"GBP": 1.15, "JPY": 0.006}}, "portfolio_state.fx_rates", "USD"),
        ({"fx_rates": {**{"USD": 0.9, "GBP": 1.15, "JPY": 0.006}, "EUR": 1.1}}, "fx_rates.EUR", ""),
        ({"cash": {"EUR": 1.0, "CHF": 5.0}}, "portfolio_state.fx_rates", "CHF"),
        ({"cash": {"EUR": -500_000.0}}, "portfolio_state", "NAV"),
    ],
)
def test_a_missing_or_bad_rate_is_an_input_error_naming_it(
    state: dict[str, Any], field: str, named: str
) -> None:
    with pytest.raises(InputError) as caught:
        snapshot_of(fund(**state))
    assert field in caught.value.field
    assert named in str(caught.value)


def test_an_fx_trade_in_an_unrated_currency_is_named() -> None:
    with pytest.raises(InputError, match=r"CHF \(used by decision.fx_trades\[0\] CHFEUR\)"):
        snapshot_of(fund(fx_trades=[("CHFEUR", "BUY", 10)]))


def test_a_rate_for_an_unused_currency_is_ignored() -> None:
    rates = {"USD": 0.9, "GBP": 1.15, "JPY": 0.006, "CHF": 1.05}
    a, b = snapshot_of(fund()), snapshot_of(fund(fx_rates=rates))
    assert a.nav == b.nav and (a.w0 == b.w0).all()


# --- a single-currency state gives exactly the answers it gave before ------------------------


def _answer(request: dict[str, Any], policies: list[dict[str, Any]]) -> dict[str, Any]:
    response = PolicyEngine().validate(
        PolicyValidationRequest.model_validate(request),
        [PolicyDefinition.model_validate(p) for p in policies],
    )
    out = response.model_dump(mode="json")
    out.pop("timings_ms")
    for attempt in (out.get("adjusted_decision") or {}).get("solver_attempts") or []:
        attempt.pop("seconds")
    return out


def _spelled_out(request: dict[str, Any], base: str) -> dict[str, Any]:
    """The same single-currency state with its currencies written out.

    The cash becomes a map in `base`, every instrument keeps (or gets) a currency with
    rate 1 to `base`, and a rate is given for a currency nothing uses.
    """
    out = copy.deepcopy(request)
    state = out["portfolio_state"]
    rates: dict[str, float] = {"CHF": 1.07}
    for instrument in state["instruments"]:
        currency = instrument.setdefault("currency", "USD")
        if currency != base:
            rates[currency] = 1.0
    state.update(base_currency=base, cash={base: state["cash"]}, fx_rates=rates)
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_a_single_currency_state_answers_as_before(
    case: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    request, policies = case
    before = _answer(request, policies)
    assert _answer(_spelled_out(request, "USD"), policies) == before
    # Another base with every rate 1: the same numbers, bit for bit.
    assert _answer(_spelled_out(request, "EUR"), policies) == before

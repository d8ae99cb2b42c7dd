"""Whole-lot rounding by integer search (engine.adjust.rounding.search) on the S&P 500 universe.

A $1bn fund holds the index (market-cap weights, 98% invested) under a name cap, an issuer
cap, GICS sector caps and a cash band; Information Technology is already above its cap (a
passive breach the decision may not worsen). A momentum decision buys four names and sells
XOM. `project` must then hold the sector exactly at its pre-trade weight while moving many
names, and whole shares make that a combinatorial problem: rounding each trade to its
nearest share fails for these sale sizes. The engine finds a decision, and the integer
search finds one on its own, without the trade-by-trade rounding that now usually gets
there first.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import pytest

import engine.adjust.rounding.passes as passes_module
from benchmarks.universe import DATA_FILE
from engine import PolicyEngine
from models import PolicyDefinition, PolicyValidationRequest

NAV = 1_000_000_000.0
POLICIES = [
    PolicyDefinition.model_validate(p)
    for p in [
        {
            "policy_name": "name-cap",
            "policy_type": "POSITION_LIMIT",
            "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.08}]},
        },
        {
            "policy_name": "issuer-cap",
            "policy_type": "POSITION_LIMIT",
            "rules": {"constraints": [{"kind": "group_limit", "attribute": "issuer", "max": 0.10}]},
        },
        {
            "policy_name": "sector-cap",
            "policy_type": "SECTOR_LIMIT",
            "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.30}]},
        },
        {
            "policy_name": "cash-band",
            "policy_type": "INVESTMENT_MANDATE",
            "rules": {"constraints": [{"kind": "cash", "min": 0.01, "max": 0.03}]},
        },
    ]
]


def _request(xom_sale: float) -> PolicyValidationRequest:
    with DATA_FILE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    price = np.array([float(r["price"]) for r in rows])
    cap = np.array([float(r["market_cap"]) for r in rows])
    shares = np.floor(0.98 * NAV * cap / cap.sum() / price)
    px = {r["symbol"]: p for r, p in zip(rows, price, strict=True)}

    def order(symbol: str, side: str, dollars: float) -> dict[str, Any]:
        return {"symbol": symbol, "side": side, "quantity": float(round(dollars / px[symbol]))}

    trades = [
        order("NVDA", "BUY", 8e6),
        order("GOOG", "BUY", 5e6),
        order("AVGO", "BUY", 5e6),
        order("JPM", "BUY", 5e6),
        order("XOM", "SELL", xom_sale),
    ]
    return PolicyValidationRequest.model_validate(
        {
            "decision": {"decision_id": "momentum", "portfolio_id": "sp500", "trades": trades},
            "portfolio_state": {
                "portfolio_id": "sp500",
                "cash": NAV - float(shares @ price),
                "positions": [
                    {"symbol": r["symbol"], "quantity": float(q)}
                    for r, q in zip(rows, shares, strict=True)
                ],
                "instruments": [
                    {
                        "symbol": r["symbol"],
                        "price": float(p),
                        "sector": r["sector"],
                        "issuer": r["cik"],
                    }
                    for r, p in zip(rows, price, strict=True)
                ],
            },
            "adjustment": "project",
        }
    )


@pytest.mark.parametrize("xom_sale", [15e6, 16e6])
def test_project_finds_a_whole_share_decision_where_nearest_rounding_fails(
    xom_sale: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _request(xom_sale)
    response = PolicyEngine().validate(request, POLICIES)
    assert not response.is_compliant
    adjusted = response.adjusted_decision
    assert adjusted is not None and adjusted.is_compliant, response.adjustment_error
    assert all(t.quantity == int(t.quantity) for t in adjusted.trades)  # whole shares
    # The sector held in passive breach is no worse than before, exactly.
    it = next(v for v in response.violations if v.subject == "Information Technology")
    names = {i.symbol: i for i in request.portfolio_state.instruments}
    held = {p.symbol: p.quantity for p in request.portfolio_state.positions}
    for t in adjusted.trades:
        held[t.symbol] = held.get(t.symbol, 0.0) + t.side.sign * t.quantity
    nav = request.portfolio_state.cash + sum(
        q * names[s].price for s, q in _request_positions(request).items()
    )
    tech = sum(
        q * names[s].price for s, q in held.items() if names[s].sector == "Information Technology"
    )
    assert tech / nav <= it.pre_trade + 1e-9

    # With trade-by-trade rounding reduced to rounding each trade to its nearest share
    # (whole shares, every lot here is 1), the integer search alone finds a decision ...
    round_to_nearest(monkeypatch)
    alone = PolicyEngine().validate(request, POLICIES)
    assert alone.adjusted_decision is not None and alone.adjusted_decision.is_compliant
    assert all(t.quantity == int(t.quantity) for t in alone.adjusted_decision.trades)
    # ... and without it, that request gets no adjusted decision.
    monkeypatch.setattr(passes_module, "integer_rounding", lambda *a, **k: None)
    without = PolicyEngine().validate(request, POLICIES)
    assert without.adjusted_decision is None and without.adjustment_error is not None


def round_to_nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reduce sequential rounding and the repair to rounding each trade to its nearest share."""

    def nearest(_self: Any, t: Any, **_: Any) -> Any:
        return np.round(t)

    monkeypatch.setattr(passes_module._Scores, "sequential", nearest)
    monkeypatch.setattr(passes_module._Scores, "repair", nearest)


def _request_positions(request: PolicyValidationRequest) -> dict[str, float]:
    return {p.symbol: p.quantity for p in request.portfolio_state.positions}

"""Compact builders of requests and policies for hand-written tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models import PolicyDefinition, PolicyValidationRequest

SECTORS = {"AAA": "Tech", "BBB": "Tech", "CCC": "Energy", "DDD": "Health", "EEE": "Energy"}
BETAS = {"AAA": 1.3, "BBB": 1.1, "CCC": 0.8, "DDD": 0.6, "EEE": 0.9}


def instrument(symbol: str, price: float = 100.0, **extra: Any) -> dict[str, Any]:
    """An instrument with a sector, issuer, beta and ADV unless overridden."""
    attributes = extra.pop("attributes", {"beta": BETAS.get(symbol, 1.0)})
    base = {
        "symbol": symbol,
        "price": price,
        "sector": SECTORS.get(symbol, "Other"),
        "issuer": f"{symbol} Inc",
        "country": "US",
        "adv": 100_000,
        "lot_size": 0,
        "attributes": attributes,
    }
    base.update(extra)
    return base


def request(
    positions: dict[str, float],
    trades: list[tuple[str, str, float]],
    *,
    cash: float = 100_000.0,
    prices: dict[str, float] | None = None,
    instruments: list[dict[str, Any]] | None = None,
    policies: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> PolicyValidationRequest:
    """A validated request; every symbol gets an instrument (price 100) unless given."""
    prices = prices or {}
    symbols = sorted({*positions, *(t[0] for t in trades), *SECTORS})
    body: dict[str, Any] = {
        "decision": {
            "decision_id": "d-1",
            "portfolio_id": "p-1",
            "trades": [{"symbol": s, "side": side, "quantity": q} for s, side, q in trades],
        },
        "portfolio_state": {
            "portfolio_id": "p-1",
            "cash": cash,
            "positions": [{"symbol": s, "quantity": q} for s, q in positions.items()],
            "instruments": instruments
            if instruments is not None
            else [instrument(s, prices.get(s, 100.0)) for s in symbols],
        },
    }
    for key in ("benchmark", "risk_model", "scenarios", "target_weights"):
        if key in fields:
            body["portfolio_state"][key] = fields.pop(key)
    if policies is not None:
        body["policies"] = policies
    body.update(fields)
    return PolicyValidationRequest.model_validate(body)


def policy(name: str, *constraints: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A strict POSITION_LIMIT policy dict with the given constraints."""
    body = {
        "policy_name": name,
        "policy_type": "POSITION_LIMIT",
        "rules": {"constraints": list(constraints)},
    }
    body.update(fields)
    PolicyDefinition.model_validate(body)
    return body


FX_RATES = {"USD": 0.9, "GBP": 1.15, "JPY": 0.006}
"""Euros per unit of each currency in `fund` (the base is EUR)."""


def fund(
    trades: Sequence[tuple[str, str, float]] = (),
    *,
    fx_trades: Sequence[tuple[str, str, float]] = (),
    policies: list[dict[str, Any]] | None = None,
    lots: dict[str, float] | None = None,
    **state: Any,
) -> PolicyValidationRequest:
    """A EUR fund holding USD, GBP and JPY names and cash, for hand-computed cases.

    Cash EUR 50,000, USD 10,000 (9,000 EUR), JPY -500,000 (an overdraft of 3,000 EUR);
    AAPL 100 x USD 200 (18,000 EUR), BP 2,000 x GBP 5 (11,500 EUR), SAP 100 x EUR 150
    (15,000 EUR), TOY short 1,000 x JPY 2,500 (-15,000 EUR). NAV = 85,500 EUR. An FX
    forward sells USD 10,000 for EUR at 0.92. `state` overrides portfolio_state fields.
    """
    lots = lots or {}
    instruments = [
        ("AAPL", 200.0, "USD", "Tech"),
        ("BP", 5.0, "GBP", "Energy"),
        ("SAP", 150.0, "EUR", "Tech"),
        ("TOY", 2500.0, "JPY", "Autos"),
        ("SHEL", 25.0, "GBP", "Energy"),
    ]
    body: dict[str, Any] = {
        "decision": {
            "decision_id": "fx-1",
            "portfolio_id": "eu-fund",
            "trades": [{"symbol": s, "side": side, "quantity": q} for s, side, q in trades],
            "fx_trades": [{"pair": p, "side": side, "quantity": q} for p, side, q in fx_trades],
        },
        "portfolio_state": {
            "portfolio_id": "eu-fund",
            "base_currency": "EUR",
            "cash": {"EUR": 50_000.0, "USD": 10_000.0, "JPY": -500_000.0},
            "fx_rates": dict(FX_RATES),
            "positions": [
                {"symbol": "AAPL", "quantity": 100},
                {"symbol": "BP", "quantity": 2_000},
                {"symbol": "SAP", "quantity": 100},
                {"symbol": "TOY", "quantity": -1_000},
            ],
            "instruments": [
                {
                    "symbol": s,
                    "price": p,
                    "currency": c,
                    "sector": sector,
                    "lot_size": lots.get(s, 0),
                }
                for s, p, c, sector in instruments
            ],
            "fx_forwards": [{"pair": "USDEUR", "side": "SELL", "quantity": 10_000, "rate": 0.92}],
        },
    }
    body["portfolio_state"].update(state)
    if policies is not None:
        body["policies"] = policies
    return PolicyValidationRequest.model_validate(body)

"""Compact builders of requests and policies for hand-written tests."""

from __future__ import annotations

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

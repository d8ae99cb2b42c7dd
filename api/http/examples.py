"""Request examples shown in the OpenAPI documentation."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CAPACITY_DECISION_EXAMPLE",
    "CAPACITY_EXAMPLE",
    "POLICY_EXAMPLE",
    "VALIDATE_EXAMPLE",
]

VALIDATE_EXAMPLE: dict[str, Any] = {
    "decision": {
        "decision_id": "dec-0001",
        "portfolio_id": "global-equity",
        "trades": [{"symbol": "AAPL", "side": "BUY", "quantity": 1200}],
    },
    "portfolio_state": {
        "portfolio_id": "global-equity",
        "cash": 2_500_000.0,
        "positions": [{"symbol": "AAPL", "quantity": 5000}, {"symbol": "MSFT", "quantity": 4000}],
        "instruments": [
            {
                "symbol": "AAPL",
                "price": 190.1,
                "sector": "Information Technology",
                "attributes": {"beta": 1.2},
            },
            {
                "symbol": "MSFT",
                "price": 410.5,
                "sector": "Information Technology",
                "attributes": {"beta": 1.1},
            },
        ],
    },
    "mode": "adjust",
}

POLICY_EXAMPLE: dict[str, Any] = {
    "policy_name": "single-name-cap",
    "policy_type": "POSITION_LIMIT",
    "enforcement_level": "strict",
    "description": "No single name above 10% of NAV",
    "scope": {"portfolios": ["*"]},
    "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.10}]},
}

CAPACITY_EXAMPLE: dict[str, Any] = {
    "portfolio_state": VALIDATE_EXAMPLE["portfolio_state"],
    "symbols": ["AAPL", "MSFT"],
    "policies": [
        {
            "policy_name": "single-name-cap",
            "policy_type": "POSITION_LIMIT",
            "rules": {"constraints": [{"kind": "weight_bounds", "min": 0.0, "max": 0.3}]},
        },
        {
            "policy_name": "cash-floor",
            "policy_type": "INVESTMENT_MANDATE",
            "rules": {"constraints": [{"kind": "cash", "min": 0.05}]},
        },
    ],
}

CAPACITY_DECISION_EXAMPLE: dict[str, Any] = {
    "portfolio_state": VALIDATE_EXAMPLE["portfolio_state"],
    "decision": VALIDATE_EXAMPLE["decision"],
    "policies": CAPACITY_EXAMPLE["policies"],
}

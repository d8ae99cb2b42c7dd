"""Request examples shown in the OpenAPI documentation."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CAPACITY_DECISION_EXAMPLE",
    "CAPACITY_EXAMPLE",
    "POLICY_EXAMPLE",
    "STRESS_EXAMPLE",
    "STRESS_STATE_EXAMPLE",
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


STRESS_EXAMPLE: dict[str, Any] = {
    "portfolios": [
        {"portfolio_id": "growth", "weights": {"AAPL": 0.4, "MSFT": 0.35, "XOM": 0.1}, "nav": 5e7},
        {"portfolio_id": "value", "weights": {"XOM": 0.5, "MSFT": 0.2}, "nav": 2e7},
    ],
    "instruments": [
        {"symbol": "AAPL", "price": 190.1, "sector": "Information Technology"},
        {"symbol": "MSFT", "price": 410.5, "sector": "Information Technology"},
        {"symbol": "XOM", "price": 112.3, "sector": "Energy"},
    ],
    "risk_model": {
        "factor_loadings": {"AAPL": [1.1, -0.2], "MSFT": [1.0, -0.1], "XOM": [0.8, 0.6]},
        "factor_covariance": [[0.04, 0.0], [0.0, 0.01]],
        "specific_variance": {"AAPL": 0.03, "MSFT": 0.02, "XOM": 0.04},
    },
    "factor_names": ["market", "value"],
    "historical": {
        "symbols": ["AAPL", "MSFT", "XOM"],
        "returns": [[-0.05, -0.04, -0.02], [0.02, 0.01, -0.03], [-0.01, 0.0, 0.04]],
        "labels": ["2020-03-16", "2020-03-17", "2020-03-18"],
    },
    "factor_shocks": [{"name": "equity crash", "factors": {"market": -0.2}}],
    "monte_carlo": {"scenarios": 10000, "seed": 42, "horizon_days": 1},
    "levels": [0.95, 0.99],
    "worst": 5,
    "policies": [
        {
            "policy_name": "scenario-risk",
            "policy_type": "RISK_LIMIT",
            "rules": {
                "constraints": [
                    {"kind": "cvar", "confidence": 0.99, "max": 0.05},
                    {
                        "kind": "stress",
                        "scenarios": {
                            "tech-selloff": {
                                "by": "sector",
                                "shocks": {"Information Technology": -0.3},
                            }
                        },
                        "max_loss": 0.15,
                    },
                ]
            },
        }
    ],
}

STRESS_STATE_EXAMPLE: dict[str, Any] = {
    "portfolios": [
        {"portfolio_id": "global-equity", "portfolio_state": VALIDATE_EXAMPLE["portfolio_state"]}
    ],
    "risk_model": {
        "factor_loadings": {"AAPL": [1.1, -0.2], "MSFT": [1.0, -0.1]},
        "factor_covariance": [[0.04, 0.0], [0.0, 0.01]],
        "specific_variance": {"AAPL": 0.03, "MSFT": 0.02},
    },
    "monte_carlo": {"scenarios": 10000, "seed": 0},
    "levels": [0.99],
    "policies": [],
}

"""A factor-model request of any size that breaches a volatility and a tracking-error limit."""

from __future__ import annotations

from typing import Any

import numpy as np

from models import PolicyValidationRequest
from tests.builders import policy

FACTORS = 20
NAV = 1e8


def _risk(loadings: np.ndarray, cov: np.ndarray, specific: np.ndarray, y: np.ndarray) -> float:
    f = loadings.T @ y
    return float(np.sqrt(f @ cov @ f + np.sum(specific * y**2)))


def factor_request(
    n: int, *, adjustment: str = "project", seed: int = 42
) -> PolicyValidationRequest:
    """n names held equally (95% invested), one buy that raises both risk measures.

    The limits lie half-way between the pre- and post-trade values, so the decision is
    not compliant and needs adjusting.
    """
    rng = np.random.default_rng(seed)
    symbols = [f"N{i:05d}" for i in range(n)]
    loadings = rng.normal(0.0, 0.5, (n, FACTORS))
    loadings[:, 0] = rng.uniform(0.7, 1.3, n)  # a market factor
    vols = rng.uniform(0.05, 0.2, FACTORS)
    cov = np.outer(vols, vols) * (0.3 + 0.7 * np.eye(FACTORS))
    specific = rng.uniform(0.15, 0.35, n) ** 2
    w0 = np.full(n, 0.95 / n)
    bench = np.full(n, 1.0 / n)
    trade = 0.04  # weight bought of the first name
    w_hat = w0.copy()
    w_hat[0] += trade
    vol = [_risk(loadings, cov, specific, w) for w in (w0, w_hat)]
    te = [_risk(loadings, cov, specific, w - bench) for w in (w0, w_hat)]
    price = 100.0
    quantity = 0.95 / n * NAV / price
    body: dict[str, Any] = {
        "decision": {
            "decision_id": f"factor-{n}",
            "portfolio_id": "p-1",
            "trades": [{"symbol": symbols[0], "side": "BUY", "quantity": trade * NAV / price}],
        },
        "portfolio_state": {
            "portfolio_id": "p-1",
            "cash": NAV - n * quantity * price,
            "positions": [{"symbol": s, "quantity": quantity} for s in symbols],
            "instruments": [
                {"symbol": s, "price": price, "sector": "Any", "lot_size": 0} for s in symbols
            ],
            "benchmark": dict(zip(symbols, bench.tolist(), strict=True)),
            "risk_model": {
                "factor_loadings": {
                    s: row.tolist() for s, row in zip(symbols, loadings, strict=True)
                },
                "factor_covariance": cov.tolist(),
                "specific_variance": dict(zip(symbols, specific.tolist(), strict=True)),
            },
        },
        "policies": [
            policy(
                "vol",
                {"kind": "volatility", "max": (vol[0] + vol[1]) / 2},
                policy_type="RISK_LIMIT",
            ),
            policy(
                "te",
                {"kind": "tracking_error", "max": (te[0] + te[1]) / 2},
                policy_type="RISK_LIMIT",
            ),
        ],
        "mode": "adjust",
        "adjustment": adjustment,
    }
    return PolicyValidationRequest.model_validate(body)

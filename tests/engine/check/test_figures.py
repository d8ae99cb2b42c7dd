"""The response's `analytics`: figures worked out by hand on a five-name portfolio.

NAV 100,000, every price 100: AAA 200 shares (20%), BBB 100 (10%), CCC 300 (30%), DDD 100
(10%), cash 30%. Sectors: AAA, BBB Tech; CCC, EEE Energy; DDD Health. One factor (variance
0.04), loadings AAA 1.2, BBB 1.0, CCC 0.8, DDD 0.5, EEE 0.9, specific variance 0.01 each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import PolicyEngine
from tests.builders import instrument, policy, request

BASE = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
RISK = {
    "factor_loadings": {"AAA": [1.2], "BBB": [1.0], "CCC": [0.8], "DDD": [0.5], "EEE": [0.9]},
    "factor_covariance": [[0.04]],
    "specific_variance": dict.fromkeys(["AAA", "BBB", "CCC", "DDD", "EEE"], 0.01),
}
Z_95 = 1.6448536269514722


def _validate(trades: list[tuple[str, str, float]], **fields: Any) -> Any:
    req = request(
        BASE, trades, cash=30_000, policies=[policy("cap", {"kind": "weight_bounds", "max": 0.25})],
        **fields,
    )  # fmt: skip
    return PolicyEngine().validate(req)


def test_exposures_sectors_and_positions() -> None:
    response = _validate([("AAA", "BUY", 100), ("EEE", "BUY", 50)], mode="validate")
    pre, proposed = response.analytics.pre_trade, response.analytics.proposed
    assert (pre.nav, pre.positions) == (100_000.0, 4)
    assert (pre.gross_exposure, pre.net_exposure, pre.cash_weight) == pytest.approx((0.7, 0.7, 0.3))
    assert {s.sector: s.weight for s in pre.top_sectors} == {
        "Tech": pytest.approx(0.3),
        "Energy": pytest.approx(0.3),
        "Health": pytest.approx(0.1),
    }
    sizes = [abs(s.weight) for s in pre.top_sectors]
    assert sizes == sorted(sizes, reverse=True)
    assert proposed.positions == 5
    assert proposed.cash_weight == pytest.approx(0.15)
    assert proposed.top_sectors[0].sector == "Tech" and proposed.top_sectors[0].weight == (
        pytest.approx(0.4)
    )
    assert response.analytics.adjusted is None  # validate mode: no adjustment
    assert pre.volatility is None and pre.var_95_1d is None and pre.cvar_95 is None


def test_risk_figures_from_the_risk_model_and_scenarios() -> None:
    returns = [[0.0] * 5 for _ in range(10)]
    returns[3][0] = -0.5  # AAA halves in one of ten scenarios: a loss of 10% of NAV
    response = _validate(
        [("AAA", "BUY", 10)],
        mode="validate",
        risk_model=RISK,
        benchmark={"AAA": 0.3, "CCC": 0.3, "EEE": 0.4},
        scenarios={"symbols": ["AAA", "BBB", "CCC", "DDD", "EEE"], "returns": returns},
    )
    pre = response.analytics.pre_trade
    # Factor exposure 1.2*0.2 + 0.1 + 0.8*0.3 + 0.5*0.1 = 0.63; variance 0.04 * 0.63^2 +
    # 0.01 * (0.04 + 0.01 + 0.09 + 0.01) = 0.017376.
    assert pre.volatility == pytest.approx(0.017376**0.5, rel=1e-12)
    assert pre.var_95_1d == pytest.approx(Z_95 * (1 / 252) ** 0.5 * 0.017376**0.5, rel=1e-9)
    # Active weights AAA -0.1, BBB 0.1, CCC 0, DDD 0.1, EEE -0.4: exposure -0.33, variance
    # 0.04 * 0.1089 + 0.01 * 0.19 = 0.006256.
    assert pre.tracking_error == pytest.approx(0.006256**0.5, rel=1e-12)
    # 5% of ten scenarios is half of the worst one: its loss, 0.5 * 20%.
    assert pre.cvar_95 == pytest.approx(0.1, rel=1e-12)
    assert response.analytics.proposed.cvar_95 == pytest.approx(0.105, rel=1e-12)


def test_the_adjusted_portfolio_and_opting_out() -> None:
    response = _validate([("AAA", "BUY", 100)], adjustment="scale_back")
    adjusted = response.analytics.adjusted
    assert adjusted is not None
    assert adjusted.top_sectors[0].sector == "Tech"
    assert adjusted.top_sectors[0].weight == pytest.approx(0.35)  # AAA held at its 25% cap
    assert _validate([("AAA", "BUY", 100)], analytics=False).analytics is None


@st.composite
def _portfolios(draw: st.DrawFn) -> tuple[Any, np.ndarray, np.ndarray]:
    """A request over 2-8 names (some short, some not held), one traded, a factor model."""
    n = draw(st.integers(2, 8))
    names = [f"N{k}" for k in range(n)]
    quantities = draw(st.lists(st.integers(-300, 600), min_size=n, max_size=n))
    loadings = draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=n, max_size=n))
    specific = draw(st.lists(st.floats(0, 0.09), min_size=n, max_size=n))
    traded = draw(st.integers(1, 200))
    req = request(
        {s: q for s, q in zip(names, quantities, strict=True) if q},
        [(names[0], "BUY", traded)],
        cash=draw(st.integers(250_000, 400_000)),  # NAV > 0 whatever the shorts
        instruments=[instrument(s, sector=f"S{k % 3}") for k, s in enumerate(names)],
        policies=[policy("cap", {"kind": "gross_exposure", "max": 100.0})],
        risk_model={
            "factor_loadings": {s: [x] for s, x in zip(names, loadings, strict=True)},
            "factor_covariance": [[0.04]],
            "specific_variance": dict(zip(names, specific, strict=True)),
        },
        mode="validate",
    )
    covariance = 0.04 * np.outer(loadings, loadings) + np.diag(specific)
    return req, np.array(quantities, dtype=float), covariance


@given(_portfolios())
def test_figures_agree_with_their_definitions(case: tuple[Any, np.ndarray, np.ndarray]) -> None:
    req, quantities, covariance = case
    response = PolicyEngine().validate(req)
    pre = response.analytics.pre_trade
    nav = req.portfolio_state.cash + 100 * quantities.sum()
    w = 100 * quantities / nav
    assert pre.nav == pytest.approx(nav, rel=1e-12)
    assert pre.positions == np.count_nonzero(quantities)
    assert pre.gross_exposure == pytest.approx(np.abs(w).sum(), rel=1e-12, abs=1e-15)
    assert pre.net_exposure + pre.cash_weight == pytest.approx(1.0, rel=1e-12)
    assert pre.gross_exposure >= abs(pre.net_exposure) - 1e-12
    assert sum(s.weight for s in pre.top_sectors) == pytest.approx(w.sum(), abs=1e-12)
    # The dense covariance, not the factor form the engine uses.
    assert pre.volatility == pytest.approx(float(np.sqrt(w @ covariance @ w)), rel=1e-9, abs=1e-12)
    assert pre.var_95_1d == pytest.approx(Z_95 * (1 / 252) ** 0.5 * pre.volatility, rel=1e-12)

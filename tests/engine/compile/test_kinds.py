"""Every constraint kind, both ways: holds / breached, active / passive.

Base portfolio (NAV 100,000, every price 100): AAA 20%, BBB 10%, CCC 30%, DDD 10%, cash 30%.
Sectors: AAA, BBB Tech; CCC, EEE Energy; DDD Health.
"""

from __future__ import annotations

import typing
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from engine import REGISTRY, PolicyEngine
from models import constraints as constraint_models
from tests.builders import policy, request

BASE = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
LOADINGS = {"AAA": [1.2], "BBB": [1.0], "CCC": [0.8], "DDD": [0.5], "EEE": [0.9]}
RISK = {
    "factor_loadings": LOADINGS,
    "factor_covariance": [[0.04]],
    "specific_variance": {s: 0.01 for s in LOADINGS},
}
BENCH = {"AAA": 0.3, "CCC": 0.3, "EEE": 0.4}
_rng = np.random.default_rng(42)
SCEN_SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
SCEN_RETURNS = (_rng.normal(0.0, 0.05, size=(40, 5))).round(4).tolist()
SCENARIOS = {"symbols": SCEN_SYMBOLS, "returns": SCEN_RETURNS}

Expected = set[tuple[str, str | None, str]]

# (case id, constraint, trades, expected breaches {(violation_type, subject, breach)})
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, float]], Expected]] = [
    ("weight_bounds holds", {"kind": "weight_bounds", "max": 0.35}, [("AAA", "BUY", 40)], set()),
    (
        "weight_bounds active",
        {"kind": "weight_bounds", "max": 0.35},
        [("AAA", "BUY", 160)],
        {("weight_bounds.max", "AAA", "active")},
    ),
    (
        "weight_bounds passive",
        {"kind": "weight_bounds", "max": 0.25},
        [("AAA", "BUY", 40)],
        {("weight_bounds.max", "CCC", "passive")},
    ),
    (
        "weight_bounds passive worsened",
        {"kind": "weight_bounds", "max": 0.25},
        [("CCC", "BUY", 10)],
        {("weight_bounds.max", "CCC", "active")},
    ),
    (
        "weight_bounds min",
        {"kind": "weight_bounds", "min": 0.05, "symbols": ["DDD"]},
        [("DDD", "SELL", 60)],
        {("weight_bounds.min", "DDD", "active")},
    ),
    (
        "weight_bounds per_symbol",
        {"kind": "weight_bounds", "max": 0.5, "per_symbol": {"BBB": {"max": 0.12}}},
        [("BBB", "BUY", 30)],
        {("weight_bounds.max", "BBB", "active")},
    ),
    (
        "group_limit holds",
        {"kind": "group_limit", "attribute": "sector", "max": 0.35},
        [("AAA", "BUY", 40)],
        set(),
    ),
    (
        "group_limit active",
        {"kind": "group_limit", "attribute": "sector", "max": 0.35},
        [("AAA", "BUY", 100)],
        {("group_limit.max", "Tech", "active")},
    ),
    (
        "group_limit passive",
        {"kind": "group_limit", "attribute": "sector", "max": 0.25},
        [("CCC", "SELL", 20)],
        {("group_limit.max", "Energy", "passive"), ("group_limit.max", "Tech", "passive")},
    ),
    (
        "group_limit min",
        {"kind": "group_limit", "attribute": "sector", "min": 0.08},
        [("DDD", "SELL", 50)],
        {("group_limit.min", "Health", "active")},
    ),
    (
        "group_limit gross",
        {"kind": "group_limit", "attribute": "sector", "measure": "gross", "max": 0.35},
        [("BBB", "SELL", 300)],
        {("group_limit.max", "Tech", "active")},
    ),
    (
        "group_limit active vs benchmark",
        {"kind": "group_limit", "attribute": "sector", "active": True, "max": 0.05},
        [("AAA", "BUY", 100)],
        {("group_limit.max", "Tech", "active"), ("group_limit.max", "Health", "passive")},
    ),
    # Four positions before (AAA, BBB, CCC, DDD); EEE has an instrument but no position.
    ("max_positions holds", {"kind": "max_positions", "max": 5}, [("EEE", "BUY", 10)], set()),
    (
        "max_positions active",
        {"kind": "max_positions", "max": 4},
        [("EEE", "BUY", 10)],
        {("max_positions.max", None, "active")},
    ),
    (
        "max_positions passive",
        {"kind": "max_positions", "max": 3},
        [("AAA", "BUY", 10)],
        {("max_positions.max", None, "passive")},
    ),
    ("trading_halt holds", {"kind": "trading_halt"}, [], set()),
    (
        "trading_halt breached",
        {"kind": "trading_halt", "reason": "fund in liquidation"},
        [("AAA", "BUY", 1)],
        {("trading_halt", "AAA", "active")},
    ),
    # AAA's volatility: sqrt(1.2^2 * 0.04 + 0.01) = 0.26; buying 40 moves its weight by 0.04,
    # a standalone risk of 0.0104.
    ("trade_risk holds", {"kind": "trade_risk", "max": 0.011}, [("AAA", "BUY", 40)], set()),
    (
        "trade_risk breached",
        {"kind": "trade_risk", "max": 0.0100},
        [("AAA", "BUY", 40)],
        {("trade_risk.max", "AAA", "active")},
    ),
    # Correlations under RISK: AAA-BBB 0.048 / (0.26 * sqrt(0.05)) = 0.826, AAA-EEE 0.807,
    # BBB-EEE 0.782, every other pair below 0.8: at 0.8 complete linkage keeps {AAA, BBB}
    # (EEE is not correlated 0.8 with both); its gross weight is 30% before the trades.
    (
        "correlation_cluster holds",
        {"kind": "correlation_cluster", "min_correlation": 0.8, "max": 0.35},
        [("AAA", "BUY", 40)],
        set(),
    ),
    (
        "correlation_cluster active",
        {"kind": "correlation_cluster", "min_correlation": 0.8, "max": 0.35},
        [("AAA", "BUY", 100)],
        {("correlation_cluster.max", "AAA, BBB", "active")},
    ),
    (
        "correlation_cluster passive",
        {"kind": "correlation_cluster", "min_correlation": 0.8, "max": 0.25},
        [("CCC", "SELL", 20)],
        {("correlation_cluster.max", "AAA, BBB", "passive")},
    ),
    ("gross_exposure holds", {"kind": "gross_exposure", "max": 0.8}, [("AAA", "BUY", 50)], set()),
    (
        "gross_exposure active",
        {"kind": "gross_exposure", "max": 0.8},
        [("AAA", "BUY", 200)],
        {("gross_exposure.max", None, "active")},
    ),
    (
        "gross_exposure passive",
        {"kind": "gross_exposure", "max": 0.6},
        [("AAA", "SELL", 50)],
        {("gross_exposure.max", None, "passive")},
    ),
    (
        "net_exposure min",
        {"kind": "net_exposure", "min": 0.65},
        [("AAA", "SELL", 100)],
        {("net_exposure.min", None, "active")},
    ),
    (
        "net_exposure holds",
        {"kind": "net_exposure", "min": 0.5, "max": 1.0},
        [("AAA", "SELL", 100)],
        set(),
    ),
    (
        "cash min",
        {"kind": "cash", "min": 0.25},
        [("AAA", "BUY", 100)],
        {("cash.min", None, "active")},
    ),
    ("cash holds", {"kind": "cash", "min": 0.2, "max": 0.4}, [("AAA", "BUY", 50)], set()),
    (
        "cash max passive",
        {"kind": "cash", "max": 0.2},
        [("DDD", "BUY", 5)],
        {("cash.max", None, "passive")},
    ),
    (
        "exposure holds",
        {"kind": "exposure", "attribute": "beta", "max": 0.8},
        [("DDD", "BUY", 50)],
        set(),
    ),
    (
        "exposure active",
        {"kind": "exposure", "attribute": "beta", "max": 0.8},
        [("AAA", "BUY", 200)],
        {("exposure.max", None, "active")},
    ),
    (
        "exposure min",
        {"kind": "exposure", "attribute": "beta", "min": 0.6},
        [("CCC", "SELL", 200)],
        {("exposure.min", None, "active")},
    ),
    (
        "exposure active vs benchmark",
        {"kind": "exposure", "attribute": "beta", "active": True, "min": -0.2},
        [("AAA", "SELL", 100)],
        {("exposure.min", None, "active")},
    ),
    (
        "concentration passive",
        {"kind": "concentration", "top_k": 2, "max": 0.45},
        [("DDD", "SELL", 10)],
        {("concentration.max", None, "passive")},
    ),
    (
        "concentration active",
        {"kind": "concentration", "top_k": 2, "max": 0.45},
        [("CCC", "BUY", 10)],
        {("concentration.max", None, "active")},
    ),
    (
        "concentration holds",
        {"kind": "concentration", "top_k": 2, "max": 0.55},
        [("CCC", "BUY", 10)],
        set(),
    ),
    ("turnover holds", {"kind": "turnover", "max": 0.05}, [("AAA", "BUY", 40)], set()),
    (
        "turnover active",
        {"kind": "turnover", "max": 0.05},
        [("AAA", "BUY", 40), ("BBB", "SELL", 20)],
        {("turnover.max", None, "active")},
    ),
    (
        "trade_limit weight",
        {"kind": "trade_limit", "max_weight_change": 0.05},
        [("AAA", "BUY", 60), ("BBB", "BUY", 10)],
        {("trade_limit.max_weight_change", "AAA", "active")},
    ),
    (
        "trade_limit holds",
        {"kind": "trade_limit", "max_weight_change": 0.05, "max_adv_fraction": 0.01},
        [("AAA", "BUY", 50)],
        set(),
    ),
    (
        "trade_limit adv",
        {"kind": "trade_limit", "max_adv_fraction": 0.0004},
        [("AAA", "BUY", 50), ("BBB", "SELL", 30)],
        {("trade_limit.max_adv_fraction", "AAA", "active")},
    ),
    (
        "restricted no_holding passive",
        {"kind": "restricted", "symbols": ["DDD"]},
        [("DDD", "SELL", 50)],
        {("restricted.no_holding", "DDD", "passive")},
    ),
    (
        "restricted no_holding active",
        {"kind": "restricted", "symbols": ["DDD"]},
        [("DDD", "BUY", 10)],
        {("restricted.no_holding", "DDD", "active")},
    ),
    (
        "restricted no_holding cured",
        {"kind": "restricted", "symbols": ["DDD"]},
        [("DDD", "SELL", 100)],
        set(),
    ),
    (
        "restricted no_buy",
        {"kind": "restricted", "symbols": ["AAA"], "mode": "no_buy"},
        [("AAA", "BUY", 10)],
        {("restricted.no_buy", "AAA", "active")},
    ),
    (
        "restricted no_buy holds",
        {"kind": "restricted", "symbols": ["AAA"], "mode": "no_buy"},
        [("AAA", "SELL", 10)],
        set(),
    ),
    (
        "restricted no_sell",
        {"kind": "restricted", "symbols": ["CCC"], "mode": "no_sell"},
        [("CCC", "SELL", 10)],
        {("restricted.no_sell", "CCC", "active")},
    ),
    (
        "restricted no_short",
        {"kind": "restricted", "symbols": ["AAA"], "mode": "no_short"},
        [("AAA", "SELL", 250)],
        {("restricted.no_short", "AAA", "active")},
    ),
    (
        "restricted no_trade",
        {"kind": "restricted", "symbols": ["BBB"], "mode": "no_trade"},
        [("BBB", "SELL", 1)],
        {("restricted.no_trade", "BBB", "active")},
    ),
    (
        "restricted where",
        {"kind": "restricted", "where": {"sector": ["Energy"]}, "mode": "no_buy"},
        [("CCC", "BUY", 5), ("AAA", "BUY", 5)],
        {("restricted.no_buy", "CCC", "active")},
    ),
    (
        "allowed_universe passive",
        {"kind": "allowed_universe", "symbols": ["AAA", "BBB", "CCC"]},
        [("AAA", "BUY", 5)],
        {("allowed_universe.outside", "DDD", "passive")},
    ),
    (
        "allowed_universe active",
        {"kind": "allowed_universe", "symbols": ["AAA", "BBB", "CCC"]},
        [("DDD", "SELL", 100), ("EEE", "BUY", 5)],
        {("allowed_universe.outside", "EEE", "active")},
    ),
    (
        "allowed_universe where",
        {"kind": "allowed_universe", "where": {"country": ["US"]}},
        [("EEE", "BUY", 5)],
        set(),
    ),
    (
        "stress holds",
        {
            "kind": "stress",
            "max_loss": 0.2,
            "scenarios": {"oil": {"by": "sector", "shocks": {"Energy": -0.3}, "default": -0.05}},
        },
        [("AAA", "BUY", 10)],
        set(),
    ),
    (
        "stress active",
        {
            "kind": "stress",
            "max_loss": 0.12,
            "scenarios": {
                "oil": {"by": "sector", "shocks": {"Energy": -0.3}, "default": -0.05},
                "aaa": {"shocks": {"AAA": -0.5}},
            },
        },
        [("CCC", "BUY", 50)],
        {("stress.max_loss", "oil", "active")},
    ),
    (
        "stress passive",
        {"kind": "stress", "max_loss": 0.05, "scenarios": {"aaa": {"shocks": {"AAA": -0.5}}}},
        [("AAA", "SELL", 50)],
        {("stress.max_loss", "aaa", "passive")},
    ),
]

# Regulatory kinds on the base portfolio, with limits scaled to its few large positions.
UCITS = {"kind": "ucits_5_10_40", "single_max": 0.35, "threshold": 0.15, "aggregate_max": 0.55}
# No asset_class in these instruments: "ignore" leaves them all non-exempt.
DIVERSIFIED = {
    "kind": "diversified_75_5_10",
    "issuer_cap": 0.15,
    "voting_cap": None,
    "missing": "ignore",
}
NAMES = {"kind": "names_rule_80", "where": {"sector": ["Energy"]}}
TECH_ILLIQUID = {"kind": "illiquid_limit", "attribute": "sector", "value": "Tech"}

REGULATORY_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, float]], Expected]] = [
    # Issuers above 15%: AAA 20% + CCC 30% = 50%.
    ("ucits holds", UCITS, [("DDD", "BUY", 40)], set()),
    (
        "ucits aggregate active",  # DDD 16% joins: 66%
        UCITS,
        [("DDD", "BUY", 60)],
        {("ucits_5_10_40.aggregate", None, "active")},
    ),
    (
        "ucits single active",  # CCC 36%; AAA 14% leaves the aggregate (36%)
        UCITS,
        [("CCC", "BUY", 60), ("AAA", "SELL", 60)],
        {("ucits_5_10_40.single", "CCC Inc", "active")},
    ),
    (
        "ucits aggregate passive",  # 50% -> 49% against 45%
        {**UCITS, "aggregate_max": 0.45},
        [("CCC", "SELL", 10)],
        {("ucits_5_10_40.aggregate", None, "passive")},
    ),
    # Basket: cash 30% + min(20, 15) + 10 + min(30, 15) + 10 = 80%.
    ("diversified holds", {**DIVERSIFIED, "basket_min": 0.75}, [("DDD", "BUY", 50)], set()),
    (
        "diversified active",  # cash 20%, CCC 40% capped at 15%: 70%
        {**DIVERSIFIED, "basket_min": 0.75},
        [("CCC", "BUY", 100)],
        {("diversified_75_5_10.basket_min", None, "active")},
    ),
    (
        "diversified passive",  # 80% -> 84% against 85%
        {**DIVERSIFIED, "basket_min": 0.85},
        [("CCC", "SELL", 40)],
        {("diversified_75_5_10.basket_min", None, "passive")},
    ),
    # Energy: CCC 30%.
    ("names_rule_80 holds", {**NAMES, "min": 0.3}, [("EEE", "BUY", 10)], set()),
    (
        "names_rule_80 active",
        {**NAMES, "min": 0.3},
        [("CCC", "SELL", 10)],
        {("names_rule_80.min", None, "active")},
    ),
    (
        "names_rule_80 passive",
        {**NAMES, "min": 0.35},
        [("CCC", "BUY", 2)],
        {("names_rule_80.min", None, "passive")},
    ),
    # "Illiquid" = Tech here: AAA 20% + BBB 10% = 30%.
    ("illiquid_limit holds", {**TECH_ILLIQUID, "max": 0.35}, [("BBB", "BUY", 4)], set()),
    (
        "illiquid_limit active",
        {**TECH_ILLIQUID, "max": 0.35},
        [("AAA", "BUY", 60)],
        {("illiquid_limit.max", None, "active")},
    ),
    (
        "illiquid_limit acquisition while above",  # total 25% within the max, BBB bought
        {**TECH_ILLIQUID, "max": 0.25},
        [("AAA", "SELL", 100), ("BBB", "BUY", 50)],
        {("illiquid_limit.no_purchase", "BBB", "active")},
    ),
    (
        "illiquid_limit passive",
        {**TECH_ILLIQUID, "max": 0.25},
        [("AAA", "SELL", 20)],
        {("illiquid_limit.max", None, "passive")},
    ),
]


def _weights(
    positions: dict[str, float], trades: list[tuple[str, str, float]]
) -> tuple[dict[str, float], dict[str, float]]:
    post = dict(positions)
    for s, side, q in trades:
        post[s] = post.get(s, 0) + (q if side == "BUY" else -q)
    nav = 30_000 + 100 * sum(positions.values())
    return (
        {s: 100 * q / nav for s, q in positions.items()},
        {s: 100 * q / nav for s, q in post.items()},
    )


def _vol(w: dict[str, float], bench: dict[str, float] | None = None) -> float:
    names = sorted(LOADINGS)
    y = np.array([w.get(s, 0.0) - (bench or {}).get(s, 0.0) for s in names])
    B = np.array([LOADINGS[s] for s in names])
    cov = B @ np.array(RISK["factor_covariance"]) @ B.T + 0.01 * np.eye(len(names))
    return float(np.sqrt(y @ cov @ y))


def _cvar(w: dict[str, float], beta: float) -> float:
    R = np.array(SCEN_RETURNS)
    losses = -R @ np.array([w.get(s, 0.0) for s in SCEN_SYMBOLS])
    # Brute-force Rockafellar-Uryasev: the minimum over zeta is at one of the losses.
    return float(min(z + np.mean(np.maximum(losses - z, 0)) / (1 - beta) for z in losses))


def _risk_cases() -> list[tuple[str, dict[str, Any], list[tuple[str, str, float]], Expected]]:
    z = float(norm.ppf(0.99)) * np.sqrt(10 / 252)
    z20 = float(norm.ppf(0.99)) * np.sqrt(20 / 252)
    away = ([("AAA", "BUY", 200)], [("AAA", "SELL", 150)])  # more / less absolute risk
    relative = ([("CCC", "SELL", 300)], [("AAA", "BUY", 100)])  # away from / toward benchmark
    out = []
    for kind, value, extra, (trades_up, trades_down) in (
        ("volatility", _vol, {}, away),
        ("tracking_error", lambda w: _vol(w, BENCH), {}, relative),
        ("var", lambda w: z * _vol(w), {"confidence": 0.99, "horizon_days": 10}, away),
        ("cvar", lambda w: _cvar(w, 0.95), {"confidence": 0.95}, away),
        ("derivatives_var", lambda w: z20 * _vol(w), {}, away),  # defaults: 99%, 20 days
    ):
        pre, post_up = _weights(BASE, trades_up)
        _, post_down = _weights(BASE, trades_down)
        vtype = f"{kind}.max"
        v_pre, v_up, v_down = value(pre), value(post_up), value(post_down)
        assert v_up > v_pre > v_down, kind
        out += [
            (f"{kind} holds", {"kind": kind, "max": v_up * 1.01, **extra}, trades_up, set()),
            (
                f"{kind} active",
                {"kind": kind, "max": (v_pre + v_up) / 2, **extra},
                trades_up,
                {(vtype, None, "active")},
            ),
            (
                f"{kind} passive",
                {"kind": kind, "max": v_down * 0.99, **extra},
                trades_down,
                {(vtype, None, "passive")},
            ),
        ]
    return out


EXPRESSION_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, float]], Expected]] = [
    (
        "expression holds",
        {"kind": "expression", "expr": 'sum(w[sector == "Energy"]) <= 0.35'},
        [("CCC", "BUY", 40)],
        set(),
    ),
    (
        "expression active",
        {"kind": "expression", "expr": 'sum(w[sector == "Energy"]) <= 0.35'},
        [("CCC", "BUY", 100)],
        {("expression.max", None, "active")},
    ),
    (
        # beta exposure 0.67 before, 0.683 after: below the floor, but better than before
        "expression min passive",
        {"kind": "expression", "expr": "0.7 <= sum(w * beta) <= 2"},
        [("AAA", "BUY", 10)],
        {("expression.min", None, "passive")},
    ),
    (
        # tracking error 7.9% before, 12.5% after selling all of AAA
        "expression risk active",
        {"kind": "expression", "expr": "risk(w - b) <= 0.1"},
        [("AAA", "SELL", 200)],
        {("expression.max", None, "active")},
    ),
]

# Targets equal to the pre-trade weights (NAV 100,000): every drift starts at 0.
TARGET = {"AAA": 0.2, "BBB": 0.1, "CCC": 0.3, "DDD": 0.1}

# Single-currency (USD) cases of the currency kinds; tests/engine/test_currencies.py has the
# multi-currency ones.
CURRENCY_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, float]], Expected]] = [
    (
        "cash by_currency holds",
        {"kind": "cash", "by_currency": True},
        [("AAA", "BUY", 300)],
        set(),
    ),
    (
        "cash by_currency overdraft",
        {"kind": "cash", "by_currency": True},
        [("AAA", "BUY", 400)],
        {("cash.min", "USD", "active")},
    ),
    (
        "currency_exposure holds",
        {"kind": "currency_exposure", "currencies": ["USD"], "min": 0.5},
        [("AAA", "BUY", 40)],
        set(),
    ),
    (
        # Buying or selling USD names with USD cash leaves the USD exposure at 100%.
        "currency_exposure passive",
        {"kind": "currency_exposure", "currencies": ["USD"], "max": 0.9},
        [("AAA", "SELL", 40)],
        {("currency_exposure.max", "USD", "passive")},
    ),
    (
        "target_drift holds",
        {"kind": "target_drift", "max": 0.05},
        [("AAA", "BUY", 40)],
        set(),
    ),
    (
        "target_drift active",
        {"kind": "target_drift", "max": 0.05, "max_total": 0.2},
        [("AAA", "BUY", 100)],
        {("target_drift.max", "AAA", "active")},
    ),
    (
        "target_drift total active",
        {"kind": "target_drift", "max_total": 0.1},
        [("AAA", "BUY", 60), ("CCC", "SELL", 50)],
        {("target_drift.max_total", None, "active")},
    ),
]

ALL_CASES = CASES + CURRENCY_CASES + REGULATORY_CASES + _risk_cases() + EXPRESSION_CASES


def _breaches(
    constraint: dict[str, Any], trades: list[tuple[str, str, float]], engine: PolicyEngine
) -> tuple[Expected, bool]:
    req = request(
        BASE,
        trades,
        cash=30_000,
        policies=[policy("p", constraint)],
        benchmark=BENCH,
        risk_model=RISK,
        scenarios=SCENARIOS,
        target_weights=TARGET,
        mode="validate",
    )
    response = engine.validate(req)
    found = {(v.violation_type, v.subject, v.breach.value) for v in response.violations}
    return found, response.is_compliant


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine()


@pytest.mark.parametrize(
    ("constraint", "trades", "expected"), [pytest.param(c, t, e, id=i) for i, c, t, e in ALL_CASES]
)
def test_kind_rows(
    constraint: dict[str, Any],
    trades: list[tuple[str, str, float]],
    expected: Expected,
    engine: PolicyEngine,
) -> None:
    found, compliant = _breaches(constraint, trades, engine)
    assert found == expected
    assert compliant == (not any(b == "active" for _, _, b in expected))


def test_every_kind_is_registered_documented_and_tested_both_ways() -> None:
    union = typing.get_args(typing.get_args(constraint_models.Constraint)[0])
    kinds = {cls.model_fields["kind"].default for cls in union}
    assert kinds == set(REGISTRY)
    for name, kind in REGISTRY.items():
        assert kind.__doc__ and "math" in kind.__doc__, f"{name} lacks its math docstring"
        cases = [(c, e) for _, c, _, e in ALL_CASES if c["kind"] == name]
        assert any(not e for _, e in cases), f"{name}: no case where it holds"
        assert any(e for _, e in cases), f"{name}: no case where it is breached"

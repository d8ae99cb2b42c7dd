"""Tests of the reference implementation on small hand-worked examples.

The base case (NAV 1,000,000; cash 300,000)::

    symbol  price  held    w0    trade        w_hat  sector   country  beta  adv
    A       100    2000    0.20  BUY 1000     0.30   Tech     US       1.5   10000
    B        50    4000    0.20  -            0.20   Tech     GB       1.0   10000
    C       200    1500    0.30  SELL 500     0.20   Energy   US       0.5   10000
    D        10    -       0.00  BUY 5000     0.05   Energy   US       2.0   10000
    E        20    -       -     -            -      Utilities JP      0.8   10000

so ``V = [A, B, C, D]`` (E is only an instrument), ``sum w0 = 0.70``, ``sum w_hat = 0.75``.
"""

from __future__ import annotations

import copy
import math
from statistics import NormalDist

import cvxpy as cp
import numpy as np
import pytest

from tests.reference import spec
from tests.strategies import KINDS, cases, random_case, validate_case

NAV = 1_000_000.0


def base_request(**extra: object) -> dict:
    """The hand-worked request of the module docstring."""

    def inst(sym: str, price: float, sector: str, country: str, beta: float) -> dict:
        return {
            "symbol": sym,
            "price": price,
            "sector": sector,
            "country": country,
            "issuer": f"{sym} Inc",
            "adv": 10000.0,
            "lot_size": 0.0,
            "attributes": {"beta": beta, "esg": 5.0},
        }

    req = {
        "decision": {
            "decision_id": "dec-1",
            "portfolio_id": "pf",
            "trades": [
                {"symbol": "A", "side": "BUY", "quantity": 1000},
                {"symbol": "C", "side": "SELL", "quantity": 500},
                {"symbol": "D", "side": "BUY", "quantity": 5000},
            ],
        },
        "portfolio_state": {
            "portfolio_id": "pf",
            "cash": 300_000.0,
            "positions": [
                {"symbol": "A", "quantity": 2000},
                {"symbol": "B", "quantity": 4000},
                {"symbol": "C", "quantity": 1500},
            ],
            "instruments": [
                inst("A", 100.0, "Tech", "US", 1.5),
                inst("B", 50.0, "Tech", "GB", 1.0),
                inst("C", 200.0, "Energy", "US", 0.5),
                inst("D", 10.0, "Energy", "US", 2.0),
                inst("E", 20.0, "Utilities", "JP", 0.8),
            ],
        },
    }
    req.update(extra)
    return req


def policy(*constraints: dict, name: str = "p", level: str = "strict", **extra: object) -> dict:
    """A policy dict around some constraints."""
    return {
        "policy_name": name,
        "policy_type": "POSITION_LIMIT",
        "enforcement_level": level,
        "rules": {"constraints": list(constraints)},
        **extra,
    }


def breaches(req: dict, *constraints: dict, level: str = "strict") -> set:
    """``{(violation_type, subject, active|passive)}`` of one policy on the proposal."""
    v = spec.verdict(req, [policy(*constraints, level=level)])
    return {(vt, subject, kind) for _name, vt, subject, kind in v.breaches}


def values(req: dict, c: dict) -> dict:
    """``{(violation_type, subject): (pre, post)}`` of one constraint."""
    pol = [policy(c)]
    _v, w0, w_hat, _nav = spec.weights(req)
    pre, post = spec.rows(req, pol, w0), spec.rows(req, pol, w_hat)
    return {
        (a.violation_type, a.subject): (a.value, b.value) for a, b in zip(pre, post, strict=True)
    }


def close(got: dict, want: dict, tol: float = 1e-12) -> bool:
    """Same keys and every ``(pre, post)`` pair within ``tol``."""
    return got.keys() == want.keys() and all(
        abs(a - b) <= tol for k in want for a, b in zip(got[k], want[k], strict=True)
    )


# --------------------------------------------------------------------------- section 2


def test_weights_of_the_base_case() -> None:
    V, w0, w_hat, nav = spec.weights(base_request())
    assert V == ["A", "B", "C", "D"]
    assert nav == pytest.approx(NAV)
    assert w0 == pytest.approx({"A": 0.2, "B": 0.2, "C": 0.3, "D": 0.0})
    assert w_hat == pytest.approx({"A": 0.3, "B": 0.2, "C": 0.2, "D": 0.05})


def test_trades_net_and_zero_positions_are_not_held() -> None:
    req = base_request()
    req["decision"]["trades"] = [
        {"symbol": "A", "side": "BUY", "quantity": 1500},
        {"symbol": "A", "side": "SELL", "quantity": 500},
    ]
    req["portfolio_state"]["positions"].append({"symbol": "E", "quantity": 0})
    V, _w0, w_hat, _ = spec.weights(req)
    assert V == ["A", "B", "C"]
    assert w_hat["A"] == pytest.approx(0.3)


def test_symbols_whose_trades_cancel_are_in_v_but_do_not_move() -> None:
    req = base_request()
    req["decision"]["trades"] = [
        {"symbol": "E", "side": "BUY", "quantity": 10},
        {"symbol": "E", "side": "SELL", "quantity": 10},
    ]
    V, _w0, w_hat, _ = spec.weights(req)
    assert "E" in V and w_hat["E"] == 0.0
    assert spec.portfolio(req).traded["E"] == 0.0


def test_bad_portfolios_are_rejected() -> None:
    req = base_request()
    req["portfolio_state"]["cash"] = -800_000.0
    with pytest.raises(ValueError, match="NAV"):
        spec.weights(req)
    req = base_request()
    req["portfolio_state"]["instruments"] = req["portfolio_state"]["instruments"][1:]
    with pytest.raises(ValueError, match="price for A"):
        spec.weights(req)


def test_effective_policies() -> None:
    req = base_request()
    pols = [
        policy({"kind": "turnover", "max": 1}, name="all"),
        policy({"kind": "turnover", "max": 1}, name="mine", scope={"portfolios": ["pf"]}),
        policy({"kind": "turnover", "max": 1}, name="other", scope={"portfolios": ["other"]}),
        policy({"kind": "turnover", "max": 1}, name="off", enabled=False),
    ]
    assert [p["policy_name"] for p in spec.effective_policies(req, pols)] == ["all", "mine"]
    req["applicable_policies"] = ["mine", "other"]
    assert [p["policy_name"] for p in spec.effective_policies(req, pols)] == ["mine"]
    req["applicable_policies"] = []
    assert len(spec.effective_policies(req, pols)) == 2
    req["policies"] = pols[2:]
    assert spec.effective_policies(req, pols) == []


# --------------------------------------------------------------------------- section 4 / 5


def test_weight_bounds() -> None:
    req = base_request()
    assert breaches(req, {"kind": "weight_bounds", "max": 0.35}) == set()
    assert breaches(req, {"kind": "weight_bounds", "max": 0.25}) == {
        ("weight_bounds.max", "A", "active")
    }
    assert breaches(req, {"kind": "weight_bounds", "max": 0.15}) == {
        ("weight_bounds.max", "A", "active"),
        ("weight_bounds.max", "B", "passive"),
        ("weight_bounds.max", "C", "passive"),
    }
    # D: pre 0.0 (excess 0.1), post 0.05 (excess 0.05): improved, still passive.
    assert breaches(req, {"kind": "weight_bounds", "min": 0.1}) == {
        ("weight_bounds.min", "D", "passive")
    }
    assert breaches(req, {"kind": "weight_bounds", "max": 0.25, "symbols": ["B", "C"]}) == set()
    # per_symbol overrides the max of C; its missing min falls back to the global one.
    got = breaches(
        req,
        {
            "kind": "weight_bounds",
            "max": 0.35,
            "min": 0.01,
            "symbols": ["A"],
            "per_symbol": {"C": {"max": 0.1}},
        },
    )
    assert got == {("weight_bounds.max", "C", "passive")}
    vals = values(
        req,
        {
            "kind": "weight_bounds",
            "max": 0.35,
            "min": 0.01,
            "symbols": ["A"],
            "per_symbol": {"C": {"max": 0.1}},
        },
    )
    assert set(vals) == {
        ("weight_bounds.max", "A"),
        ("weight_bounds.min", "A"),
        ("weight_bounds.max", "C"),
        ("weight_bounds.min", "C"),
    }


def test_group_limit() -> None:
    req = base_request()
    c = {"kind": "group_limit", "attribute": "sector", "max": 0.45}
    assert close(
        values(req, c),
        {("group_limit.max", "Energy"): (0.3, 0.25), ("group_limit.max", "Tech"): (0.4, 0.5)},
    )
    assert breaches(req, c) == {("group_limit.max", "Tech", "active")}
    assert breaches(req, {**c, "max": 0.6}) == set()
    assert breaches(req, {**c, "max": 0.35}) == {("group_limit.max", "Tech", "active")}
    assert breaches(req, {**c, "max": 0.22}) == {
        ("group_limit.max", "Tech", "active"),
        ("group_limit.max", "Energy", "passive"),
    }
    assert breaches(req, {"kind": "group_limit", "attribute": "sector", "min": 0.3}) == {
        ("group_limit.min", "Energy", "active")
    }
    assert breaches(req, {**c, "per_group": {"Tech": {"max": 0.6}}}) == set()
    assert breaches(req, {"kind": "group_limit", "attribute": "country", "max": 0.5}) == {
        ("group_limit.max", "US", "active")
    }  # US: 0.5 -> 0.55


def test_group_limit_gross_and_active() -> None:
    req = base_request()
    req["decision"]["trades"].append({"symbol": "B", "side": "SELL", "quantity": 6000})
    c = {"kind": "group_limit", "attribute": "sector", "max": 1.0, "measure": "gross"}
    assert values(req, c)[("group_limit.max", "Tech")] == pytest.approx((0.4, 0.4))
    c["measure"] = "net"
    assert values(req, c)[("group_limit.max", "Tech")] == pytest.approx((0.4, 0.2))
    req = base_request()
    req["portfolio_state"]["benchmark"] = {"A": 0.3, "E": 0.2}
    c = {"kind": "group_limit", "attribute": "sector", "min": -0.1, "max": 0.15, "active": True}
    assert close(
        values(req, c),
        {
            ("group_limit.max", "Energy"): (0.3, 0.25),
            ("group_limit.min", "Energy"): (0.3, 0.25),
            ("group_limit.max", "Tech"): (0.1, 0.2),
            ("group_limit.min", "Tech"): (0.1, 0.2),
            ("group_limit.max", "Utilities"): (-0.2, -0.2),
            ("group_limit.min", "Utilities"): (-0.2, -0.2),
        },
    )
    assert breaches(req, c) == {
        ("group_limit.max", "Energy", "passive"),
        ("group_limit.max", "Tech", "active"),
        ("group_limit.min", "Utilities", "passive"),
    }
    c = {
        "kind": "group_limit",
        "attribute": "sector",
        "max": 0.3,
        "active": True,
        "measure": "gross",
    }
    # Tech: |0.3-0.3| + |0.2| = 0.2 post, |0.2-0.3| + 0.2 = 0.3 pre
    assert values(req, c)[("group_limit.max", "Tech")] == pytest.approx((0.3, 0.2))


def test_portfolio_wide_exposures() -> None:
    req = base_request()
    assert close(
        values(req, {"kind": "gross_exposure", "max": 1}),
        {("gross_exposure.max", None): (0.7, 0.75)},
    )
    assert breaches(req, {"kind": "gross_exposure", "max": 0.72}) == {
        ("gross_exposure.max", None, "active")
    }
    assert breaches(req, {"kind": "gross_exposure", "max": 0.8}) == set()
    assert breaches(req, {"kind": "net_exposure", "min": 0.8, "max": 0.9}) == {
        ("net_exposure.min", None, "passive")
    }
    assert breaches(req, {"kind": "net_exposure", "max": 0.74}) == {
        ("net_exposure.max", None, "active")
    }
    assert close(values(req, {"kind": "cash", "min": 0}), {("cash.min", None): (0.3, 0.25)})
    assert breaches(req, {"kind": "cash", "min": 0.28}) == {("cash.min", None, "active")}
    assert breaches(req, {"kind": "cash", "max": 0.2}) == {("cash.max", None, "passive")}


def test_exposure_and_missing_attributes() -> None:
    req = base_request()
    c = {"kind": "exposure", "attribute": "beta", "max": 0.8}
    assert close(values(req, c), {("exposure.max", None): (0.65, 0.85)})
    assert breaches(req, c) == {("exposure.max", None, "active")}
    assert breaches(req, {**c, "max": 0.9}) == set()
    assert breaches(req, {"kind": "exposure", "attribute": "beta", "min": 0.9}) == {
        ("exposure.min", None, "passive")
    }
    req["portfolio_state"]["benchmark"] = {"A": 0.5, "E": 0.5}
    c = {"kind": "exposure", "attribute": "beta", "max": 1, "active": True}
    # pre: 0.65 - (0.75 + 0.4) = -0.5; post 0.85 - 1.15 = -0.3
    assert values(req, c)[("exposure.max", None)] == pytest.approx((-0.5, -0.3))
    req = base_request()
    del req["portfolio_state"]["instruments"][3]["attributes"]["esg"]  # D
    c = {"kind": "exposure", "attribute": "esg", "max": 10}
    with pytest.raises(spec.MissingAttributeError, match="D"):
        values(req, c)
    assert values(req, {**c, "missing": "ignore"})[("exposure.max", None)] == pytest.approx(
        (3.5, 3.5)
    )
    assert values(req, {**c, "missing": {"default": 10.0}})[("exposure.max", None)] == (
        pytest.approx((3.5, 4.0))
    )


def test_concentration() -> None:
    req = base_request()
    c = {"kind": "concentration", "top_k": 2, "max": 0.45}
    assert close(values(req, c), {("concentration.max", None): (0.5, 0.5)})
    assert breaches(req, c) == {("concentration.max", None, "passive")}
    assert breaches(req, {**c, "max": 0.5 + 1e-6}) == set()
    assert breaches(req, {**c, "top_k": 3, "max": 0.72}) == set()  # .3+.2+.2 both sides
    assert breaches(req, {**c, "top_k": 4, "max": 0.72}) == {
        ("concentration.max", None, "active")
    }  # 0.70 -> 0.75
    assert values(req, {**c, "top_k": 10})[("concentration.max", None)] == pytest.approx(
        (0.7, 0.75)
    )


def test_turnover_and_trade_limits_are_always_active() -> None:
    req = base_request()
    assert close(values(req, {"kind": "turnover", "max": 1}), {("turnover.max", None): (0.0, 0.25)})
    assert breaches(req, {"kind": "turnover", "max": 0.2}) == {("turnover.max", None, "active")}
    assert breaches(req, {"kind": "turnover", "max": 0.3}) == set()
    assert breaches(req, {"kind": "trade_limit", "max_weight_change": 0.08}) == {
        ("trade_limit.max_weight_change", "A", "active"),
        ("trade_limit.max_weight_change", "C", "active"),
    }
    assert (
        breaches(req, {"kind": "trade_limit", "max_weight_change": 0.08, "symbols": ["D"]}) == set()
    )
    # A trades 1000 shares = 0.1 of its 10000 ADV: limit f * 10000 * 100 / NAV = f.
    rows = spec.rows(
        req, [policy({"kind": "trade_limit", "max_adv_fraction": 0.05})], spec.weights(req)[2]
    )
    lim = {r.subject: r.limit for r in rows}
    assert lim == pytest.approx({"A": 0.05, "B": 0.025, "C": 0.1, "D": 0.005})
    assert breaches(req, {"kind": "trade_limit", "max_adv_fraction": 0.05}) == {
        ("trade_limit.max_adv_fraction", "A", "active"),
        ("trade_limit.max_adv_fraction", "D", "active"),
    }
    assert breaches(req, {"kind": "trade_limit", "max_adv_fraction": 10}) == set()
    assert all(r.always_active for r in rows)


def test_restricted_modes() -> None:
    req = base_request()
    r = {"kind": "restricted"}
    assert breaches(req, {**r, "symbols": ["B"]}) == {("restricted.no_holding", "B", "passive")}
    assert breaches(req, {**r, "symbols": ["D", "E"]}) == {("restricted.no_holding", "D", "active")}
    assert breaches(req, {**r, "symbols": ["C"]}) == {("restricted.no_holding", "C", "passive")}
    assert breaches(req, {**r, "symbols": ["A", "C"], "mode": "no_buy"}) == {
        ("restricted.no_buy", "A", "active")
    }
    assert breaches(req, {**r, "symbols": ["A", "C"], "mode": "no_sell"}) == {
        ("restricted.no_sell", "C", "active")
    }
    assert breaches(req, {**r, "symbols": ["A", "B"], "mode": "no_trade"}) == {
        ("restricted.no_trade", "A", "active")
    }
    assert breaches(req, {**r, "symbols": ["B"], "mode": "no_trade"}) == set()
    assert breaches(req, {**r, "symbols": ["A", "B"], "mode": "no_short"}) == set()
    req["decision"]["trades"].append({"symbol": "B", "side": "SELL", "quantity": 6000})
    assert breaches(req, {**r, "symbols": ["A", "B"], "mode": "no_short"}) == {
        ("restricted.no_short", "B", "active")
    }
    req = base_request()
    assert breaches(req, {**r, "where": {"sector": ["Energy"]}}) == {
        ("restricted.no_holding", "C", "passive"),
        ("restricted.no_holding", "D", "active"),
    }
    assert breaches(req, {**r, "where": {"sector": ["Energy"], "country": ["GB"]}}) == set()


def test_allowed_universe() -> None:
    req = base_request()
    assert breaches(req, {"kind": "allowed_universe", "symbols": ["A", "B"]}) == {
        ("allowed_universe.outside", "C", "passive"),
        ("allowed_universe.outside", "D", "active"),
    }
    assert breaches(req, {"kind": "allowed_universe", "where": {"country": ["US"]}}) == {
        ("allowed_universe.outside", "B", "passive")
    }
    assert (
        breaches(req, {"kind": "allowed_universe", "where": {"sector": ["Tech", "Energy"]}})
        == set()
    )


def _with_covariance(req: dict) -> dict:
    syms = ["A", "B", "C", "D", "E"]
    var = [0.04, 0.09, 0.01, 0.16, 0.04]
    req["portfolio_state"]["risk_model"] = {
        "covariance": {
            "symbols": syms,
            "matrix": [[var[i] if i == j else 0.0 for j in range(5)] for i in range(5)],
        }
    }
    return req


def test_volatility_var_tracking_error() -> None:
    req = _with_covariance(base_request())
    pre, post = math.sqrt(0.0061), math.sqrt(0.008)
    assert close(
        values(req, {"kind": "volatility", "max": 1}), {("volatility.max", None): (pre, post)}
    )
    assert breaches(req, {"kind": "volatility", "max": 0.085}) == {
        ("volatility.max", None, "active")
    }
    assert breaches(req, {"kind": "volatility", "max": 0.07}) == {
        ("volatility.max", None, "active")
    }
    assert breaches(req, {"kind": "volatility", "max": 0.09}) == set()
    z = NormalDist().inv_cdf(0.95)
    got = values(req, {"kind": "var", "confidence": 0.95, "max": 1})[("var.max", None)]
    assert got == pytest.approx((z * pre / math.sqrt(252), z * post / math.sqrt(252)))
    got = values(req, {"kind": "var", "confidence": 0.95, "horizon_days": 10, "max": 1})
    assert got[("var.max", None)][1] == pytest.approx(z * post * math.sqrt(10 / 252))
    req["portfolio_state"]["benchmark"] = {"A": 0.3, "E": 0.2}
    # pre: (-.1, .2, .3, 0, -.2); post: (0, .2, .2, .05, -.2)
    te_pre = math.sqrt(0.01 * 0.04 + 0.04 * 0.09 + 0.09 * 0.01 + 0.04 * 0.04)
    te_post = math.sqrt(0.04 * 0.09 + 0.04 * 0.01 + 0.0025 * 0.16 + 0.04 * 0.04)
    assert close(
        values(req, {"kind": "tracking_error", "max": 1}),
        {("tracking_error.max", None): (te_pre, te_post)},
    )
    assert breaches(req, {"kind": "tracking_error", "max": 0.07}) == {
        ("tracking_error.max", None, "passive")
    }


def test_factor_risk_model() -> None:
    req = base_request()
    req["portfolio_state"]["risk_model"] = {
        "factor_loadings": {"A": [1.0, 0.5], "B": [1.2, 0.0], "C": [0.8, -0.3], "D": [1.0, 1.0]},
        "factor_covariance": [[0.04, 0.01], [0.01, 0.02]],
        "specific_variance": {"A": 0.01, "C": 0.02},
    }
    b = np.array([[1.0, 0.5], [1.2, 0.0], [0.8, -0.3], [1.0, 1.0]])
    sigma = b @ np.array([[0.04, 0.01], [0.01, 0.02]]) @ b.T + np.diag([0.01, 0, 0.02, 0])
    w = np.array([0.3, 0.2, 0.2, 0.05])
    got = values(req, {"kind": "volatility", "max": 1})[("volatility.max", None)][1]
    assert got == pytest.approx(math.sqrt(w @ sigma @ w))
    req["portfolio_state"]["risk_model"]["factor_loadings"].pop("D")
    with pytest.raises(ValueError, match="lacks D"):
        values(req, {"kind": "volatility", "max": 1})


def _with_scenarios(req: dict) -> dict:
    req["portfolio_state"]["scenarios"] = {
        "symbols": ["D", "C", "B", "A"],
        "returns": [[0, 0, 0, -0.1], [0, 0, -0.05, 0], [0.01] * 4, [0, -0.2, 0, 0]],
    }
    return req


def test_cvar() -> None:
    req = _with_scenarios(base_request())
    # losses pre (.02, .01, -.007, .06), post (.03, .01, -.0075, .04)
    c = {"kind": "cvar", "confidence": 0.5, "max": 1}
    assert close(values(req, c), {("cvar.max", None): (0.04, 0.035)})
    got = values(req, {**c, "confidence": 0.6})[("cvar.max", None)]
    assert got == pytest.approx(((0.06 + 0.6 * 0.02) / 1.6, (0.04 + 0.6 * 0.03) / 1.6))
    assert values(req, {**c, "confidence": 0.75})[("cvar.max", None)] == pytest.approx((0.06, 0.04))
    assert breaches(req, {**c, "max": 0.038}) == set()
    assert breaches(req, {**c, "max": 0.03}) == {("cvar.max", None, "passive")}
    req["decision"]["trades"][1]["side"] = "BUY"  # C: 0.3 -> 0.4, scenario 4 loss 0.08
    assert breaches(req, {**c, "max": 0.05}) == {("cvar.max", None, "active")}


@pytest.mark.parametrize("seed", range(5))
def test_cvar_matches_the_rockafellar_uryasev_lp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    losses = rng.normal(size=int(rng.integers(5, 40)))
    beta = float(rng.uniform(0.5, 0.99))
    z = cp.Variable()
    lp = cp.Problem(cp.Minimize(z + cp.sum(cp.pos(losses - z)) / (len(losses) * (1 - beta))))
    lp.solve(solver=cp.CLARABEL)
    assert spec.NUM.cvar(losses, beta) == pytest.approx(lp.value, abs=1e-7)
    # the sorted-tail formula with its fractional atom
    tail, m = sorted(losses, reverse=True), (1 - beta) * len(losses)
    k = math.floor(m)
    expected = (sum(tail[:k]) + (m - k) * (tail[k] if k < len(tail) else 0.0)) / m
    assert spec.NUM.cvar(losses, beta) == pytest.approx(expected, abs=1e-12)


def test_stress() -> None:
    req = base_request()
    c = {
        "kind": "stress",
        "max_loss": 0.1,
        "scenarios": {
            "a-crash": {"by": "symbol", "shocks": {"A": -0.2}, "default": -0.1},
            "sectors": {"by": "sector", "shocks": {"Tech": -0.3, "Energy": 0.1}},
        },
    }
    assert close(
        values(req, c),
        {
            ("stress.max_loss", "a-crash"): (0.09, 0.105),
            ("stress.max_loss", "sectors"): (0.09, 0.125),
        },
    )
    assert breaches(req, c) == {
        ("stress.max_loss", "a-crash", "active"),
        ("stress.max_loss", "sectors", "active"),
    }
    assert breaches(req, {**c, "max_loss": 0.08}) == {
        ("stress.max_loss", "a-crash", "active"),
        ("stress.max_loss", "sectors", "active"),
    }
    assert breaches(req, {**c, "max_loss": 0.2}) == set()
    c = {
        "kind": "stress",
        "max_loss": 0.01,
        "scenarios": {"energy": {"by": "sector", "shocks": {"Energy": -0.1}}},
    }
    assert breaches(req, c) == {("stress.max_loss", "energy", "passive")}  # .03 -> .025


def test_verdict_enforcement_and_cure_passive() -> None:
    req = base_request()
    active = {"kind": "weight_bounds", "max": 0.25}  # A active
    passive = {"kind": "weight_bounds", "max": 0.25, "symbols": ["C"], "min": 0.0}
    assert not spec.verdict(req, [policy(active)]).is_compliant
    assert spec.verdict(req, [policy(active, level="advisory")]).is_compliant
    assert spec.verdict(req, [policy(active, level="monitor")]).is_compliant
    req_p = base_request()
    req_p["decision"]["trades"] = [{"symbol": "A", "side": "BUY", "quantity": 100}]
    v = spec.verdict(req_p, [policy(passive)])
    assert v.is_compliant and v.breaches == {("p", "weight_bounds.max", "C", "passive")}
    assert not spec.verdict(req_p, [policy(passive)], cure_passive=True).is_compliant
    req_p["cure_passive"] = True
    assert not spec.verdict(req_p, [policy(passive)]).is_compliant
    assert spec.verdict(req_p, [policy(passive, level="advisory")]).is_compliant
    # the post-trade weights can be given: cancelling every trade is compliant
    _v, w0, _w_hat, _nav = spec.weights(req)
    assert spec.verdict(req, [policy(active)], w_post=w0).is_compliant


def test_breach_tolerance() -> None:
    req = base_request()
    assert breaches(req, {"kind": "weight_bounds", "max": 0.3 - 5e-10, "symbols": ["A"]}) == set()
    assert breaches(req, {"kind": "weight_bounds", "max": 0.3 - 2e-9, "symbols": ["A"]}) == {
        ("weight_bounds.max", "A", "active")
    }


# --------------------------------------------------------------------------- section 6


def test_optimum_single_cap() -> None:
    req, pol = base_request(), [policy({"kind": "weight_bounds", "max": 0.25})]
    assert spec.optimum(req, pol, "scale_back") == pytest.approx(0.0025, abs=1e-9)
    assert spec.optimum(req, pol, "project") == pytest.approx(0.0025, abs=1e-9)


def test_optimum_net_cap_scale_back_versus_project() -> None:
    req = base_request()
    pol = [policy({"kind": "net_exposure", "max": 0.72})]
    # scale_back: keep the C sale, shrink A by 15 % and D by 30 %.
    assert spec.optimum(req, pol, "scale_back") == pytest.approx(4.5e-4, abs=1e-9)
    w = spec.optimum_weights(req, pol, "scale_back")
    assert w == pytest.approx({"A": 0.285, "B": 0.2, "C": 0.2, "D": 0.035}, abs=1e-6)
    # project: take 0.0075 from each of the four names.
    assert spec.optimum(req, pol, "project") == pytest.approx(2.25e-4, abs=1e-9)
    assert spec.optimum(
        req, [policy({"kind": "net_exposure", "max": 0.72}, level="advisory")], "scale_back"
    ) == pytest.approx(0.0, abs=1e-9)


def test_optimum_passive_rows_and_cure_passive() -> None:
    req = base_request()
    pol = [policy({"kind": "weight_bounds", "max": 0.15})]
    # A was already over 0.15: held to "no worse than 0.20"; B and C are passive.
    assert spec.optimum(req, pol, "scale_back") == pytest.approx(0.01, abs=1e-9)
    assert spec.optimum(req, pol, "project") == pytest.approx(0.01, abs=1e-9)
    # curing: B cannot move under scale_back; project brings A, B, C to 0.15.
    assert spec.optimum(req, pol, "scale_back", cure_passive=True) is None
    assert spec.optimum(req, pol, "project", cure_passive=True) == pytest.approx(0.0275, abs=1e-9)


def test_optimum_conflict_only_with_cure_passive() -> None:
    req = base_request()
    pols = [
        policy({"kind": "net_exposure", "min": 0.75}, name="floor"),
        policy({"kind": "cash", "min": 0.35}, name="cash"),
    ]
    assert spec.optimum(req, pols, "scale_back") == pytest.approx(1.25e-3, abs=1e-9)
    assert spec.optimum(req, pols, "project") == pytest.approx(6.25e-4, abs=1e-9)
    req["cure_passive"] = True
    assert spec.optimum(req, pols, "scale_back") is None
    assert spec.optimum(req, pols, "project") is None


def test_optimum_with_risk_rows_is_compliant() -> None:
    req = _with_scenarios(_with_covariance(base_request()))
    pols = [
        policy(
            {"kind": "volatility", "max": 0.082},
            {"kind": "cvar", "confidence": 0.5, "max": 0.03},
            name="risk",
        )
    ]
    for method in ("scale_back", "project"):
        w = spec.optimum_weights(req, pols, method)
        assert w is not None
        assert spec.verdict(req, pols, w_post=w).is_compliant
        post = {r.violation_type: r.value for r in spec.rows(req, pols, w)}
        assert post["volatility.max"] <= 0.082 + 1e-8
        assert post["cvar.max"] <= 0.04 + 1e-8  # breached pre-trade: no worse than 0.04
    w = spec.optimum_weights(req, pols, "project", cure_passive=True)
    post = {r.violation_type: r.value for r in spec.rows(req, pols, w)}
    assert post["cvar.max"] <= 0.03 + 1e-8


# --------------------------------------------------------------------------- generators


def test_generated_cases_validate_and_cover_every_kind() -> None:
    seen_kinds: set[str] = set()
    seen_breaches: set[str] = set()
    for seed in range(120):
        req, pols = random_case(np.random.default_rng(seed))
        validate_case(req, pols)
        V, _w0, _w_hat, _ = spec.weights(req)
        assert 5 <= len(V) <= 30 and 2 <= len(pols) <= 6
        seen_kinds |= {c["kind"] for p in pols for c in p["rules"]["constraints"]}
        seen_breaches |= {b[3] for b in spec.verdict(req, pols).breaches}
    assert seen_kinds == set(KINDS)
    assert seen_breaches == {"active", "passive"}


def test_generation_is_reproducible() -> None:
    a = random_case(np.random.default_rng(7))
    b = random_case(np.random.default_rng(7))
    assert a == b
    req, pols = random_case(
        np.random.default_rng(7),
        inline_policies=True,
        long_short=True,
        kinds=["cvar"],
        n_names=5,
        cure_passive=True,
        conflict=True,
    )
    validate_case(req, pols)
    assert req["policies"] == pols and "scenarios" in req["portfolio_state"]


def test_conflicting_pairs_are_infeasible_only_when_curing() -> None:
    found = 0
    for seed in range(30):
        req, pols = random_case(
            np.random.default_rng(seed),
            n_policies=2,
            conflict=True,
            cure_passive=True,
            n_names=6,
            scoping=False,
            applicable=False,
        )
        if len([p for p in pols if p["policy_name"].startswith("conflict")]) != 2:
            continue
        pols = [p for p in pols if p["policy_name"].startswith("conflict")]
        assert spec.optimum(req, pols, "project") is None
        assert spec.optimum(req, pols, "scale_back", cure_passive=False) is not None
        found += 1
        if found == 3:
            break
    assert found == 3


def test_hypothesis_strategy_draws_valid_cases() -> None:
    from hypothesis import given, settings

    @settings(max_examples=15, deadline=None, database=None)
    @given(cases(long_short=True))
    def check(case: tuple[dict, list[dict]]) -> None:
        validate_case(*copy.deepcopy(case))

    check()

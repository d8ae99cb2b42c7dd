"""engine.stress: hand-computed measures, JAX = NumPy, seeded Monte Carlo, the engine's kinds."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine import InputError, PolicyEngine
from engine.batch.backend import backend, jax_available
from engine.compile.conic_blocks import cvar_of_losses
from engine.stress import loss_matrix, risk_measures, run_stress
from engine.stress import scenarios as scenario_module
from models import PolicyDefinition, PolicyValidationRequest
from models.stress import MonteCarlo, StressRequest
from tests.builders import instrument, policy

BACKENDS = ["numpy", *(["jax"] if jax_available() else [])]

SYMBOLS = ["AAA", "BBB", "CCC"]
R = [
    [-0.10, 0.02, 0.00],
    [0.05, -0.04, 0.01],
    [-0.02, -0.02, -0.02],
    [0.03, 0.01, -0.06],
]
W = {"AAA": 0.5, "BBB": 0.3, "CCC": 0.2}
# Losses -R w by hand: 0.044, -0.015, 0.020, -0.006; in decreasing order s0, s2, s3, s1.
MODEL = {
    "factor_loadings": {"AAA": [1.0, 0.2], "BBB": [0.8, -0.1], "CCC": [1.2, 0.5]},
    "factor_covariance": [[0.04, 0.01], [0.01, 0.02]],
    "specific_variance": {"AAA": 0.02, "BBB": 0.03, "CCC": 0.05},
}


def _request(**fields: Any) -> StressRequest:
    body: dict[str, Any] = {
        "portfolios": [{"portfolio_id": "p1", "weights": W}],
        "historical": {"symbols": SYMBOLS, "returns": R, "labels": ["d0", "d1", "d2", "d3"]},
        "policies": [],
    }
    body.update(fields)
    return StressRequest.model_validate(body)


@pytest.mark.parametrize("name", BACKENDS)
def test_hand_computed_var_cvar_and_worst(name: str) -> None:
    answer = run_stress(_request(levels=[0.5, 0.6, 0.75], worst=2, backend=name))
    figures = answer.portfolios[0]
    var = [r.var for r in figures.risk]
    cvar = [r.cvar for r in figures.risk]
    assert var == pytest.approx([-0.006, 0.020, 0.020], abs=1e-15)
    # 0.5: (0.044 + 0.020) / 2; 0.6: (0.044 + 0.6 * 0.020) / 1.6; 0.75: the worst alone.
    assert cvar == pytest.approx([0.032, 0.035, 0.044], abs=1e-15)
    assert [(w.label, w.source) for w in figures.worst] == [
        ("d0", "historical"),
        ("d2", "historical"),
    ]
    assert [w.loss for w in figures.worst] == pytest.approx([0.044, 0.020], abs=1e-15)
    assert figures.loss.max == pytest.approx(0.044) and figures.loss.min == pytest.approx(-0.015)
    assert figures.loss.mean == pytest.approx((0.044 - 0.015 + 0.020 - 0.006) / 4)


def test_firm_wide_is_the_nav_weighted_pnl() -> None:
    portfolios = [
        {"portfolio_id": "p1", "weights": W, "nav": 100.0},
        {"portfolio_id": "p2", "weights": {"AAA": -0.2, "BBB": 0.6}, "nav": 300.0},
    ]
    answer = run_stress(_request(portfolios=portfolios, include_losses=True))
    p1, p2 = (np.array(p.losses) for p in answer.portfolios)
    firm = np.array(answer.firm.losses)
    np.testing.assert_allclose(firm, (100 * p1 + 300 * p2) / 400, atol=1e-15)
    np.testing.assert_allclose(p2, -(np.array(R)[:, :2] @ [-0.2, 0.6]), atol=1e-15)
    assert answer.firm.nav == 400.0 and answer.firm.portfolio_id == "firm"
    top = answer.firm.risk[-1]  # 99%: the worst firm loss
    assert top.cvar == pytest.approx(firm.max()) and top.cvar_amount == pytest.approx(
        400 * firm.max()
    )


def test_factor_shocks_map_through_the_exposures() -> None:
    answer = run_stress(
        _request(
            historical=None,
            risk_model=MODEL,
            factor_names=["market", "value"],
            factor_shocks=[
                {"name": "crash", "factors": {"market": -0.2}},
                {"name": "rotation", "factors": {"market": 0.01, "value": 0.1}},
            ],
            include_losses=True,
        )
    )
    B = np.array([MODEL["factor_loadings"][s] for s in SYMBOLS])
    w = np.array([W[s] for s in SYMBOLS])
    expected = -np.array([[-0.2, 0.0], [0.01, 0.1]]) @ B.T @ w
    np.testing.assert_allclose(answer.portfolios[0].losses, expected, atol=1e-15)
    assert answer.sources == {"historical": 0, "factor_shock": 2, "monte_carlo": 0}
    assert answer.portfolios[0].worst[0].label == "crash"


@pytest.mark.skipif(not jax_available(), reason="JAX is not installed")
def test_jax_and_numpy_give_identical_measures() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.02, (5003, 40))
    weights = rng.normal(0, 0.05, (7, 40))
    levels = [0.9, 0.95, 0.975, 0.99, 0.999]
    out = {}
    for name in ("numpy", "jax"):
        b = backend(name)  # type: ignore[arg-type]
        losses = loss_matrix(returns, weights, b, chunk=1000)
        out[name] = (losses, risk_measures(losses, levels, 25, b))
    (ln, mn), (lj, mj) = out["numpy"], out["jax"]
    np.testing.assert_allclose(ln, lj, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(mn.worst, mj.worst)
    np.testing.assert_allclose(mn.var, mj.var, rtol=0, atol=1e-15)
    np.testing.assert_allclose(mn.cvar, mj.cvar, rtol=0, atol=1e-14)
    np.testing.assert_allclose(mn.mean, mj.mean, rtol=0, atol=1e-15)
    np.testing.assert_allclose(mn.std, mj.std, rtol=0, atol=1e-15)
    for p in range(7):  # the cvar kind's own function, column by column
        for j, level in enumerate(levels):
            assert mn.cvar[j, p] == pytest.approx(cvar_of_losses(ln[:, p], level), abs=1e-14)


def _draws(name: str, seed: int, scenarios: int = 10_000, horizon: float = 1.0) -> np.ndarray:
    from models import RiskModel

    return scenario_module.monte_carlo_returns(
        RiskModel.model_validate(MODEL),
        SYMBOLS,
        MonteCarlo(scenarios=scenarios, seed=seed, horizon_days=horizon),
        backend(name),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", BACKENDS)
def test_monte_carlo_is_reproducible_and_matches_the_model_covariance(name: str) -> None:
    first, again, other = _draws(name, 11), _draws(name, 11), _draws(name, 12)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    B = np.array([MODEL["factor_loadings"][s] for s in SYMBOLS])
    sigma = B @ np.array(MODEL["factor_covariance"]) @ B.T + np.diag(
        [MODEL["specific_variance"][s] for s in SYMBOLS]
    )
    annual = _draws(name, 11, horizon=252.0)  # scaled by h / 252 = 1: the annual covariance
    sample = np.cov(annual, rowvar=False)
    # 10,000 draws: each entry's standard error is about sqrt(2 / S) = 1.4% of the scale.
    assert np.max(np.abs(sample - sigma)) / np.max(np.abs(sigma)) < 0.05
    assert np.max(np.abs(annual.mean(axis=0))) < 4 * np.sqrt(np.max(np.diag(sigma)) / 10_000)
    np.testing.assert_allclose(annual / np.sqrt(252.0), first, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", BACKENDS)
def test_monte_carlo_draws_do_not_depend_on_the_chunk_size(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _draws(name, 5, scenarios=1000)
    monkeypatch.setattr(scenario_module, "DRAW_CHUNK", 97)
    np.testing.assert_array_equal(_draws(name, 5, scenarios=1000), whole)


def test_rules_agree_with_the_engines_var_cvar_and_stress_kinds() -> None:
    """The same portfolio and scenarios through /validate's engine give the same numbers."""
    rules = [
        {"kind": "cvar", "confidence": 0.6, "max": 0.001},
        {"kind": "var", "confidence": 0.99, "horizon_days": 10, "max": 0.0001},
        {
            "kind": "stress",
            "scenarios": {
                "tech": {"by": "sector", "shocks": {"Tech": -0.3}},
                "all": {"by": "symbol", "shocks": {"AAA": -0.1}, "default": -0.05},
            },
            "max_loss": 0.01,
        },
    ]
    pol = policy("scenario-risk", *rules, policy_type="RISK_LIMIT")
    instruments = [
        instrument("AAA", 50.0, sector="Tech"),
        instrument("BBB", 20.0, sector="Energy"),
        instrument("CCC", 10.0, sector="Tech"),
    ]
    nav = 1_000_000.0
    positions = [
        {"symbol": s, "quantity": W[s] * nav / i["price"]}
        for s, i in zip(SYMBOLS, instruments, strict=True)
    ]
    state = {
        "portfolio_id": "p1",
        "cash": nav * (1 - sum(W.values())),
        "positions": positions,
        "instruments": instruments,
        "risk_model": MODEL,
        "scenarios": {"symbols": SYMBOLS, "returns": R},
    }
    request = PolicyValidationRequest.model_validate(
        {
            "decision": {"decision_id": "d", "portfolio_id": "p1", "trades": []},
            "portfolio_state": state,
            "mode": "validate",
        }
    )
    engine = PolicyEngine().validate(request, [PolicyDefinition.model_validate(pol)])
    by_row = {(v.violation_type, v.subject): v.observed for v in engine.violations}
    assert len(by_row) == 4  # every row breached: each reports its observed value
    for name in BACKENDS:
        answer = run_stress(
            _request(
                portfolios=[{"portfolio_id": "p1", "portfolio_state": state}],
                policies=[pol],
                levels=[0.6],
                risk_model=MODEL,
                backend=name,
            )
        )
        figures = answer.portfolios[0]
        ours = {(r.violation_type, r.subject): r.observed for r in figures.rules}
        assert ours.keys() == by_row.keys()
        for key, value in by_row.items():
            assert ours[key] == pytest.approx(value, abs=1e-12), key
        # The cvar rule is the 60% CVaR of the loss distribution; the hand value is 0.035.
        assert figures.risk[0].cvar == pytest.approx(ours[("cvar.max", None)], abs=1e-12)
        assert figures.risk[0].cvar == pytest.approx(0.035, abs=1e-12)
        assert ours[("stress.max_loss", "tech")] == pytest.approx(0.3 * 0.7, abs=1e-12)
        assert all(r.breached for r in figures.rules)
        var_rule = next(r for r in figures.rules if r.kind == "var")
        assert var_rule.scenario_value == pytest.approx(0.044)  # 99% of 4: the worst loss
        assert [r.policy_name for r in answer.firm.rules] == ["scenario-risk"] * 4


def test_bad_inputs_raise_naming_the_field() -> None:
    def field(**fields: Any) -> str:
        with pytest.raises(InputError) as info:
            run_stress(_request(**fields))
        return info.value.field

    short = {"symbols": ["AAA", "BBB"], "returns": [[0.01, 0.02]]}
    assert field(historical=short) == "historical.symbols"
    assert field(historical=None, factor_shocks=[{"name": "x", "factors": {"m": 1}}]) == (
        "factor_shocks"
    )
    assert (
        field(
            historical=None,
            risk_model=MODEL,
            factor_shocks=[{"name": "x", "factors": {"momentum": 0.1}}],
        )
        == "factor_shocks[0].factors.momentum"
    )
    assert field(historical=None, monte_carlo={"scenarios": 10}) == "monte_carlo"
    no_c = {
        k: {s: v for s, v in MODEL[k].items() if s != "CCC"}
        if isinstance(MODEL[k], dict)
        else MODEL[k]
        for k in MODEL
    }
    assert field(historical=None, risk_model=no_c, monte_carlo={"scenarios": 10}) == "risk_model"
    var = policy("v", {"kind": "var", "confidence": 0.99, "max": 0.1}, policy_type="RISK_LIMIT")
    assert field(policies=[var]) == "risk_model"
    many = {f"S{j}": 0.0001 for j in range(5000)}
    big_model = {
        "factor_loadings": {s: [1.0] for s in many},
        "factor_covariance": [[0.04]],
        "specific_variance": {},
    }
    assert (
        field(
            historical=None,
            portfolios=[{"portfolio_id": "p", "weights": many}],
            risk_model=big_model,
            monte_carlo={"scenarios": 5000},
        )
        == "monte_carlo.scenarios"
    )
    assert field(portfolios=[{"portfolio_id": "p", "weights": {"AAA": 0.0}}]) == "portfolios"

"""The export of the regulatory rules, custom expressions, the hierarchy and conditions.

Each round trip maximizes a mean-variance objective with SCS (not one of the engine's
solvers) inside the exported set, turns the optimum into trades and validates them: the
service must find no active breach of a strict policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np
import pytest

import engine.export
from engine import PolicyEngine
from engine.bounds import shifted, solve_bounds
from engine.errors import PolicyResolutionError
from engine.export import export_constraints
from engine.export_forms import cvxpy_constraints, max_violation, trades_for
from engine.layout import build_layout
from engine.portfolio import snapshot_of
from engine.resolve import effective_policies
from models import PolicyValidationRequest, PolicyValidationResponse, PortfolioNode
from models.export import ConstraintSet, ConstraintSetRequest
from tests.builders import instrument, policy

NAV = 1_000_000.0


def regulatory(name: str, *constraints: dict[str, Any]) -> dict[str, Any]:
    return policy(name, *constraints, policy_type="REGULATORY")


def _fund(rng: np.random.Generator, *, above: int, n_issuers: int = 14) -> dict[str, Any]:
    """A long-only fund of `n_issuers` issuers (some with two lines), `above` of them held
    between 5% and 9.5% (above the UCITS threshold), the rest below 5%.

    Prices vary; some lines are illiquid, some are bonds (outside an equity names rule),
    every line has shares outstanding; a factor risk model and a benchmark cover them.
    """
    instruments, positions = [], []
    weights = np.concatenate(
        [rng.uniform(0.055, 0.095, above), rng.uniform(0.005, 0.045, n_issuers - above)]
    )
    if weights.sum() > 0.95:
        weights *= 0.95 / weights.sum()  # keep some cash; issuers above 5% may fall below
    for g, weight in enumerate(weights):
        lines = 2 if g % 4 == 1 else 1
        for line in range(lines):
            symbol = f"I{g:02d}{'AB'[line]}"
            price = float(rng.uniform(20.0, 400.0))
            instruments.append(
                instrument(
                    symbol,
                    price,
                    issuer=f"Issuer {g:02d}",
                    asset_class="bond" if g % 5 == 3 else "equity",
                    attributes={
                        "liquidity": "illiquid" if g % 6 == 2 else "highly_liquid",
                        "shares_outstanding": float(rng.uniform(2e3, 5e5)),
                        "beta": float(rng.uniform(0.6, 1.4)),
                    },
                )
            )
            positions.append({"symbol": symbol, "quantity": weight / lines * NAV / price})
    symbols = [i["symbol"] for i in instruments]
    invested = sum(p["quantity"] * i["price"] for p, i in zip(positions, instruments, strict=True))
    loadings = rng.normal(0.0, 0.3, (len(symbols), 2))
    return {
        "portfolio_id": "fund",
        "cash": NAV - invested,
        "positions": positions,
        "instruments": instruments,
        "benchmark": {s: 1.0 / len(symbols) for s in symbols},
        "risk_model": {
            "factor_loadings": {s: row.tolist() for s, row in zip(symbols, loadings, strict=True)},
            "factor_covariance": [[0.04, 0.0], [0.0, 0.02]],
            "specific_variance": {s: float(rng.uniform(0.01, 0.05)) for s in symbols},
        },
    }


def _export(state: dict[str, Any], policies: list[dict[str, Any]], **extra: Any) -> ConstraintSet:
    body = {"portfolio_state": state, "policies": policies, **extra}
    return export_constraints(ConstraintSetRequest.model_validate(body))


def _bonds(item: dict[str, Any]) -> bool:
    return bool(item.get("asset_class") == "bond")


def _illiquid(item: dict[str, Any]) -> bool:
    return bool(item["attributes"].get("liquidity") == "illiquid")


def _optimum(
    constraints: ConstraintSet,
    seed: int,
    state: dict[str, Any],
    favour: Callable[[dict[str, Any]], bool] = _bonds,
) -> np.ndarray:
    """A mean-variance optimum inside the set, found by SCS.

    Expected returns favour the instruments `favour` picks (bonds by default), so that
    the names rule (or the illiquid limit) binds too.
    """
    n = len(constraints.variables.symbols)
    rng = np.random.default_rng(seed)
    favoured = {i["symbol"] for i in state["instruments"] if favour(i)}
    mu = rng.normal(0.05, 0.1, n)
    mu += np.array([1.0 if s in favoured else 0.0 for s in constraints.variables.symbols])
    B = rng.normal(size=(n, n)) * 0.1
    sigma = B @ B.T / n + 0.01 * np.eye(n)
    w = cp.Variable(n)
    aux = cp.Variable(len(constraints.variables.auxiliary)) if constraints.variables.auxiliary else None
    problem = cp.Problem(
        cp.Maximize(mu @ w - 2.0 * cp.quad_form(w, sigma)),
        cvxpy_constraints(constraints, w, aux),
    )
    problem.solve(solver="SCS", eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), problem.status
    assert w.value is not None
    values = None if aux is None else np.asarray(aux.value)
    assert max_violation(constraints, w.value, values) < 1e-6
    return np.asarray(w.value)


def _validate(
    constraints: ConstraintSet,
    state: dict[str, Any],
    policies: list[dict[str, Any]],
    w: np.ndarray,
    **extra: Any,
) -> PolicyValidationResponse:
    trades = [t.model_dump(mode="json") for t in trades_for(constraints, w)]
    request = {
        "decision": {"decision_id": "opt", "portfolio_id": state["portfolio_id"], "trades": trades},
        "portfolio_state": state,
        "policies": policies,
        "mode": "validate",
        **extra,
    }
    return PolicyEngine().validate(PolicyValidationRequest.model_validate(request))


def _assert_accepted(response: PolicyValidationResponse) -> None:
    assert response.is_compliant, [v.description for v in response.violations]
    active = [v for v in response.violations if v.breach.value == "active"]
    assert not active, [v.description for v in active]


UCITS = regulatory("ucits", {"kind": "ucits_5_10_40"})
DIVERSIFIED = regulatory("diversified", {"kind": "diversified_75_5_10", "basket_min": 0.75})
NAMES = regulatory("names", {"kind": "names_rule_80", "where": {"asset_class": ["equity"]}, "min": 0.95})
ILLIQUID = regulatory("illiquid", {"kind": "illiquid_limit", "max": 0.02})
VAR = regulatory("var", {"kind": "derivatives_var", "max": 0.12, "horizon_days": 20})
VAR_RELATIVE = regulatory(
    "var-relative", {"kind": "derivatives_var", "mode": "relative", "max_ratio": 1.5}
)
EXPRESSIONS = policy(
    "custom",
    {"kind": "expression", "expr": 'sum(w[asset_class == "bond"]) <= 0.2'},
    {"kind": "expression", "expr": "0.9 <= sum(w * beta) <= 1.1"},
    {"kind": "expression", "expr": "risk(w - b) <= 0.06"},
    {"kind": "expression", "expr": "norm1(w - w0) + max(abs(w)) <= 0.6"},
    policy_type="INVESTMENT_MANDATE",
)
LONG_ONLY = policy(
    "long-only", {"kind": "weight_bounds", "min": 0.0}, {"kind": "gross_exposure", "max": 1.0}
)
SETS = {
    "ucits": [UCITS],
    "diversified": [DIVERSIFIED],
    "names": [NAMES],
    "illiquid": [ILLIQUID],
    "var": [VAR, VAR_RELATIVE],
    "expression": [EXPRESSIONS],
    "everything": [UCITS, DIVERSIFIED, NAMES, ILLIQUID, VAR, EXPRESSIONS],
}


CASES = [(name, above, "linearized") for name in SETS for above in (0, 5)] + [
    ("ucits", 7, "linearized"),  # issuers above 5% already weigh more than 40% (passive)
    ("ucits", 5, "blocks"),
    ("diversified", 5, "blocks"),
    ("everything", 7, "blocks"),
]


@pytest.mark.parametrize(("name", "above", "form"), CASES)
def test_round_trip_regulatory_and_expression_sets(name: str, above: int, form: str) -> None:
    seed = 7 * above + len(name)
    state = _fund(np.random.default_rng(seed), above=above)
    policies = SETS[name]
    constraints = _export(state, policies, universe=[], options={"form": form})
    favour = _illiquid if name == "illiquid" else _bonds
    w = _optimum(constraints, seed, state, favour)
    _assert_accepted(_validate(constraints, state, policies, w))
    # The policies shape the optimum: without them, the same objective breaches them.
    free = _export(state, [LONG_ONLY], universe=[], options={"form": form})
    unconstrained = _validate(free, state, policies, _optimum(free, seed, state, favour))
    assert [v for v in unconstrained.violations if v.breach.value == "active"]

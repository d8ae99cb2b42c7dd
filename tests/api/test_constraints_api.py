"""POST /api/v1/constraints through the real app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import copy
import json
from typing import Any

import cvxpy as cp
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.http.routes.constraints import CONSTRAINTS_EXAMPLE
from engine.export.constraints import policy_revision
from engine.export.forms import cvxpy_constraints, trades_for
from models import PolicyDefinition
from models.export import ConstraintSet
from tests.api.conftest import example_request
from tests.builders import policy

URL = "/api/v1/constraints"


def _state() -> dict[str, Any]:
    state: dict[str, Any] = example_request("small-rebalance")["portfolio_state"]
    return state


def _create(client: TestClient, policies: list[dict[str, Any]]) -> None:
    for body in policies:
        r = client.post("/api/v1/policies", json=body)
        assert r.status_code == 201, r.text


def test_stored_policies_are_exported_with_their_revision(
    client: TestClient, core: list[dict[str, Any]]
) -> None:
    _create(client, core)
    r = client.post(URL, json={"portfolio_state": _state()})
    assert r.status_code == 200, r.text
    exported = ConstraintSet.model_validate(r.json())
    strict = [p for p in core if p.get("enforcement_level", "strict") == "strict"]
    assert exported.policies == sorted(p["policy_name"] for p in strict)
    definitions = [PolicyDefinition.model_validate(p) for p in strict]
    assert exported.policy_revision == policy_revision(definitions)
    assert exported.linear.rows, "the core policies have linear rows"

    changed = copy.deepcopy(strict[0])
    changed["description"] = "edited"
    r = client.put(f"/api/v1/policies/{changed['policy_name']}", json=changed)
    assert r.status_code == 200, r.text
    again = client.post(URL, json={"portfolio_state": _state()}).json()
    assert again["policy_revision"] != exported.policy_revision


def test_the_openapi_example_is_accepted(client: TestClient, core: list[dict[str, Any]]) -> None:
    _create(client, core)
    r = client.post(URL, json=CONSTRAINTS_EXAMPLE)
    assert r.status_code == 200, r.text
    assert r.json()["variables"]["symbols"] == ["AAPL", "MSFT", "XOM"]


def test_an_optimum_inside_the_exported_set_validates_compliant(client: TestClient) -> None:
    """The optimizer's round trip over HTTP: export, optimize with SCS, validate."""
    policies = [
        {
            "policy_name": "caps",
            "policy_type": "POSITION_LIMIT",
            "rules": {
                "constraints": [
                    {"kind": "weight_bounds", "max": 0.12, "min": 0.0},
                    {"kind": "gross_exposure", "max": 0.95},
                    {"kind": "concentration", "top_k": 3, "max": 0.3},
                ]
            },
        },
        {
            "policy_name": "sectors",
            "policy_type": "SECTOR_LIMIT",
            "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.2}]},
        },
        {
            "policy_name": "trading",
            "policy_type": "REGULATORY",
            "rules": {"constraints": [{"kind": "turnover", "max": 0.3}]},
        },
    ]
    state = _state()
    body = {"portfolio_state": state, "policies": policies, "universe": ["AAPL", "JNJ"]}
    r = client.post(URL, json=body)
    assert r.status_code == 200, r.text
    exported = ConstraintSet.model_validate(r.json())
    n = len(exported.variables.symbols)
    w = cp.Variable(n)
    mu = np.random.default_rng(7).normal(0.05, 0.1, n)
    objective = cp.Maximize(mu @ w - 2.0 * cp.sum_squares(w))
    cp.Problem(objective, cvxpy_constraints(exported, w)).solve(
        solver="SCS", eps_abs=1e-10, eps_rel=1e-10, max_iters=100_000
    )
    assert w.value is not None
    trades = [t.model_dump(mode="json") for t in trades_for(exported, w.value)]
    assert trades, "the optimum moves the portfolio"
    decision = {"decision_id": "opt-1", "portfolio_id": state["portfolio_id"], "trades": trades}
    r = client.post(
        "/api/v1/validate",
        json={
            "decision": decision,
            "portfolio_state": state,
            "policies": policies,
            "mode": "validate",
        },
    )
    assert r.status_code == 200, r.text
    verdict = r.json()
    assert verdict["is_compliant"], verdict["violations"]
    assert not [v for v in verdict["violations"] if v["breach"] == "active"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"universe": ["NOPE"]}, "universe[0]"),
        ({"portfolio_id": "another"}, "portfolio_id"),
        ({"options": {"margin": -1.0}}, "options.margin"),
        ({"options": {"form": "dense"}}, "options.form"),
        ({"applicable_policies": ["missing-policy"]}, "applicable_policies[0]"),
        ({"portfolio_state": {"portfolio_id": "x"}}, "portfolio_state.cash"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, core: list[dict[str, Any]], change: dict[str, Any], field: str
) -> None:
    _create(client, core)
    r = client.post(URL, json={"portfolio_state": _state(), **change})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]], r.json()


def test_a_policy_needing_missing_data_is_422(client: TestClient) -> None:
    policies = [
        {
            "policy_name": "vol",
            "policy_type": "RISK_LIMIT",
            "rules": {"constraints": [{"kind": "volatility", "max": 0.2}]},
        }
    ]
    r = client.post(URL, json={"portfolio_state": _state(), "policies": policies})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "portfolio_state.risk_model"


def test_a_non_finite_context_value_is_422(client: TestClient) -> None:
    body = json.dumps({"portfolio_state": _state(), "policies": [], "context": {"x": 1.0}})
    raw = body.replace('"x": 1.0', '"x": NaN')
    r = client.post(URL, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "context.x"


def test_a_child_portfolio_exports_what_it_inherits(client: TestClient) -> None:
    """The export holds the effective set /validate checks: inherited, overridden."""
    tree = [
        {"portfolio_id": "acme", "name": "Acme Asset Management"},
        {"portfolio_id": "equity", "name": "Equity Fund", "parent_id": "acme"},
        {"portfolio_id": "pf-1", "name": "Portfolio 1", "parent_id": "equity"},
    ]
    for node in tree:
        r = client.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node)
        assert r.status_code == 201, r.text
    _create(
        client,
        [
            policy(
                "firm-gross",
                {"kind": "gross_exposure", "max": 0.95},
                scope={"portfolios": ["acme"]},
            ),
            policy(
                "fund-cap",
                {"kind": "weight_bounds", "max": 0.25},
                scope={"portfolios": ["equity"]},
                overridable=True,
            ),
            policy(
                "pf-1-cap",
                {"kind": "weight_bounds", "max": 0.3},
                scope={"portfolios": ["pf-1"]},
                overrides="fund-cap",
            ),
        ],
    )

    def export(portfolio_id: str) -> ConstraintSet:
        state = {**_state(), "portfolio_id": portfolio_id}
        r = client.post(URL, json={"portfolio_state": state})
        assert r.status_code == 200, r.text
        return ConstraintSet.model_validate(r.json())

    child = export("pf-1")
    assert child.policies == ["firm-gross", "pf-1-cap"]
    caps = {r.limit for r in child.linear.rows if r.violation_type == "weight_bounds.max"}
    assert caps == {0.3}
    assert export("equity").policies == ["firm-gross", "fund-cap"]
    # An id the registered tree lacks is refused, not exported without its policies.
    r = client.post(URL, json={"portfolio_state": {**_state(), "portfolio_id": "elsewhere"}})
    assert r.status_code == 422 and r.json()["error"] == "unknown_portfolio", r.text


def test_regulatory_and_expression_rows_survive_the_wire(client: TestClient) -> None:
    """UCITS restriction rows and an expression's conic rows, through JSON and back."""
    policies = [
        policy("ucits", {"kind": "ucits_5_10_40"}, policy_type="REGULATORY"),
        policy(
            "custom",
            {"kind": "expression", "expr": "norm2(w - w0) <= 0.05"},
            {"kind": "expression", "expr": "sum(w * beta) <= 0.6"},
            policy_type="INVESTMENT_MANDATE",
        ),
    ]
    state = _state()
    body = {"portfolio_state": state, "policies": policies}
    r = client.post(URL, json=body)
    assert r.status_code == 200, r.text
    exported = ConstraintSet.model_validate(r.json())
    assert exported.conic, "norm2 needs a second-order cone"
    restricted = {r.exact for r in exported.linear.rows if r.policy_name == "ucits"}
    assert restricted == {True, False}  # single-issuer rows exact, the restriction not
    n = len(exported.variables.symbols)
    w = cp.Variable(n)
    mu = np.random.default_rng(11).normal(0.05, 0.1, n)
    cp.Problem(cp.Maximize(mu @ w - cp.sum_squares(w)), cvxpy_constraints(exported, w)).solve(
        solver="SCS", eps_abs=1e-10, eps_rel=1e-10, max_iters=100_000
    )
    assert w.value is not None
    trades = [t.model_dump(mode="json") for t in trades_for(exported, w.value)]
    decision = {"decision_id": "opt-2", "portfolio_id": state["portfolio_id"], "trades": trades}
    r = client.post(
        "/api/v1/validate",
        json={
            "decision": decision,
            "portfolio_state": state,
            "policies": policies,
            "mode": "validate",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["is_compliant"], r.json()["violations"]
    assert not [v for v in r.json()["violations"] if v["breach"] == "active"]

"""Never approve what was not checked: no applicable policy, an unknown portfolio, a policy
that cannot be evaluated -- each is a refusal naming the field, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.settings import Settings
from tests.api.conftest import example_request, services_of
from tests.builders import policy


def _cap(name: str, limit: float, **fields: Any) -> dict[str, Any]:
    body = policy(name, {"kind": "weight_bounds", "max": limit})
    body.update(fields)
    return body


def _breaching_request(decision_id: str = "dec-fc") -> dict[str, Any]:
    """small-rebalance with a buy that puts JNJ far over any 10% cap."""
    body = example_request("small-rebalance")
    body["decision"]["decision_id"] = decision_id
    body["decision"]["trades"] = [{"symbol": "JNJ", "side": "BUY", "quantity": 20000}]
    return body


def _for_portfolio(request: dict[str, Any], portfolio_id: str) -> dict[str, Any]:
    request["decision"]["portfolio_id"] = portfolio_id
    request["portfolio_state"]["portfolio_id"] = portfolio_id
    return request


def _refused(r: Any, error: str, field: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == error
    assert body["detail"][0]["field"] == field
    return body


def _nothing_stored(client: TestClient, decision_id: str) -> None:
    assert client.get(f"/api/v1/validations/{decision_id}").status_code == 404
    assert services_of(client).store.outbox.counts() == (0, 0)


def test_an_empty_store_refuses_instead_of_approving(client: TestClient) -> None:
    r = client.post("/api/v1/validate", json=_breaching_request())
    body = _refused(r, "no_applicable_policies", "decision.portfolio_id")
    assert "global-equity" in body["message"]
    _nothing_stored(client, "dec-fc")


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param({"enabled": False}, id="disabled"),
        pytest.param({"enforcement_level": "monitor"}, id="monitor-only"),
        pytest.param({"scope": {"portfolios": ["another-fund"]}}, id="other-portfolio"),
        pytest.param({"when": 'risk_mode == "DEFENSIVE"'}, id="condition-false"),
    ],
)
def test_no_enabled_strict_or_advisory_policy_applying_is_refused(
    client: TestClient, stored: dict[str, Any]
) -> None:
    assert client.post("/api/v1/policies", json=_cap("cap", 0.10, **stored)).status_code == 201
    request = _breaching_request()
    request["context"] = {"risk_mode": "NORMAL"}
    r = client.post("/api/v1/validate", json=request)
    _refused(r, "no_applicable_policies", "decision.portfolio_id")
    _nothing_stored(client, "dec-fc")


def test_an_advisory_policy_alone_is_checked(client: TestClient) -> None:
    cap = _cap("cap", 0.10, enforcement_level="advisory")
    assert client.post("/api/v1/policies", json=cap).status_code == 201
    r = client.post("/api/v1/validate", json=_breaching_request())
    assert r.status_code == 200, r.text
    assert r.json()["policies_checked"] == ["cap"]
    assert r.json()["violations"]  # advisory: reported, not blocking


@pytest.fixture
def opted_in(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url, events="none", approve_when_no_policy_applies=True
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_the_explicit_setting_approves_when_nothing_applies(opted_in: TestClient) -> None:
    r = opted_in.post("/api/v1/validate", json=_breaching_request())
    assert r.status_code == 200, r.text
    assert r.json()["is_compliant"] and r.json()["policies_checked"] == []


def test_inline_what_if_policies_are_the_callers_choice(client: TestClient) -> None:
    request = _breaching_request()
    request["policies"] = [_cap("elsewhere", 0.10, scope={"portfolios": ["another-fund"]})]
    r = client.post("/api/v1/validate", json=request)
    assert r.status_code == 200, r.text
    assert r.headers["X-PES-Dry-Run"] == "true"
    assert r.json()["policies_checked"] == []


def _register_tree(client: TestClient) -> None:
    for node in (
        {"portfolio_id": "firm", "name": "Firm"},
        {"portfolio_id": "ucits-global-equity", "name": "UCITS fund", "parent_id": "firm"},
    ):
        r = client.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node)
        assert r.status_code in (200, 201), r.text


def test_an_unknown_portfolio_is_refused_with_the_closest_ids(client: TestClient) -> None:
    _register_tree(client)
    assert client.post("/api/v1/policies", json=_cap("cap", 0.10)).status_code == 201
    request = _breaching_request()
    _for_portfolio(request, "ucits-global-equlty")
    r = client.post("/api/v1/validate", json=request)
    body = _refused(r, "unknown_portfolio", "decision.portfolio_id")
    assert "'ucits-global-equity'" in body["message"]
    _nothing_stored(client, "dec-fc")
    # The registered id is checked (and the breach found).
    _for_portfolio(request, "ucits-global-equity")
    r = client.post("/api/v1/validate", json=request)
    assert r.status_code == 200, r.text
    assert not r.json()["is_compliant"]


def test_without_a_tree_portfolio_ids_are_free(client: TestClient) -> None:
    assert client.post("/api/v1/policies", json=_cap("cap", 0.10)).status_code == 201
    r = client.post("/api/v1/validate", json=_breaching_request())
    assert r.status_code == 200, r.text
    assert not r.json()["is_compliant"]


def test_an_inline_what_if_may_name_an_unregistered_portfolio(client: TestClient) -> None:
    _register_tree(client)
    request = _breaching_request()
    request["policies"] = [_cap("cap", 0.10)]
    r = client.post("/api/v1/validate", json=request)
    assert r.status_code == 200, r.text
    assert not r.json()["is_compliant"]


def test_a_policy_that_overflows_on_the_request_fails_closed(client: TestClient) -> None:
    # Finite constants (accepted when stored); the request's data makes the row overflow.
    overflow = policy(
        "beta-scaled", {"kind": "expression", "expr": "sum(w * beta) * 1e300 <= 1e301"}
    )
    assert client.post("/api/v1/policies", json=overflow).status_code == 201, "stored"
    request = _breaching_request()
    request["portfolio_state"]["instruments"][0]["attributes"]["beta"] = 1e10
    r = client.post("/api/v1/validate", json=request)
    body = _refused(
        r, "policy_not_evaluable", "policy 'beta-scaled' rules.constraints[0] (expression)"
    )
    assert "not a finite number" in body["message"]
    _nothing_stored(client, "dec-fc")
    # Other portfolios' requests without the bad data still validate.
    r = client.post("/api/v1/validate", json=_breaching_request("dec-ok"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("route", ["/api/v1/capacity", "/api/v1/constraints"])
def test_capacity_and_export_refuse_an_unknown_portfolio_too(
    client: TestClient, route: str
) -> None:
    _register_tree(client)
    assert client.post("/api/v1/policies", json=_cap("cap", 0.10)).status_code == 201
    request = _for_portfolio(_breaching_request(), "ucits-global-equlty")
    body = {"portfolio_state": request["portfolio_state"]}
    if route.endswith("capacity"):
        body["decision"] = request["decision"]
    r = client.post(route, json=body)
    refused = _refused(r, "unknown_portfolio", "portfolio_state.portfolio_id")
    assert "'ucits-global-equity'" in refused["message"]
    body["portfolio_state"]["portfolio_id"] = "ucits-global-equity"
    if "decision" in body:
        body["decision"]["portfolio_id"] = "ucits-global-equity"
    r = client.post(route, json=body)
    assert r.status_code == 200, r.text

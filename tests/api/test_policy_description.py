"""A policy's description holds at most DESCRIPTION_LIMIT characters; longer is a 422
naming `description`. A longer one stored before the limit stays readable and enforced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.store.tables import portfolio_policies
from models.policy import DESCRIPTION_LIMIT
from tests.api.conftest import services_of

NAME = "single-name-cap"


def _too_long(r: Any) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert [d["field"] for d in body["detail"]] == ["description"], body
    assert str(DESCRIPTION_LIMIT) in body["detail"][0]["message"], body


def test_a_description_over_the_limit_is_refused(
    client: TestClient, core: list[dict[str, Any]]
) -> None:
    cap = next(p for p in core if p["policy_name"] == NAME)
    _too_long(client.post("/api/v1/policies", json=dict(cap, description="x" * 4001)))
    assert client.get("/api/v1/policies").json() == []

    r = client.post("/api/v1/policies", json=dict(cap, description="é" * DESCRIPTION_LIMIT))
    assert r.status_code == 201, r.text
    _too_long(client.put(f"/api/v1/policies/{NAME}", json=dict(cap, description="y" * 4001)))
    _too_long(client.patch(f"/api/v1/policies/{NAME}", json={"description": "z" * 4001}))
    assert client.get(f"/api/v1/policies/{NAME}").json()["version"] == 1


def test_the_limit_is_in_the_openapi_document(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("PolicyDefinition", "PolicyPublic"):
        assert schemas[model]["properties"]["description"]["maxLength"] == DESCRIPTION_LIMIT


def test_a_longer_description_stored_before_the_limit_stays_usable(
    client: TestClient,
    core: list[dict[str, Any]],
    load_request: Callable[[str], dict[str, Any]],
) -> None:
    for policy in core:
        assert client.post("/api/v1/policies", json=policy).status_code == 201
    row = client.get(f"/api/v1/policies/{NAME}").json()
    legacy = {k: v for k, v in row.items() if k not in ("version", "updated_at", "updated_by")}
    legacy["description"] = "old " * 2000
    with services_of(client).store.engine.begin() as conn:
        conn.execute(
            sa.update(portfolio_policies)
            .where(portfolio_policies.c.policy_name == NAME)
            .values(definition=legacy)
        )
    assert client.get(f"/api/v1/policies/{NAME}").json()["description"] == legacy["description"]
    assert NAME in [p["policy_name"] for p in client.get("/api/v1/policies").json()]
    r = client.post("/api/v1/validate", json=load_request("aapl-overweight"))
    assert r.status_code == 200, r.text
    assert NAME in r.json()["policies_checked"]
    # Disabling it needs no new description; changing it does.
    assert client.delete(f"/api/v1/policies/{NAME}").status_code == 200
    _too_long(client.patch(f"/api/v1/policies/{NAME}", json={"enabled": True}))
    r = client.patch(f"/api/v1/policies/{NAME}", json={"enabled": True, "description": "short"})
    assert r.status_code == 200, r.text

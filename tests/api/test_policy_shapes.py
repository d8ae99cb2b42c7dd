"""The policy resource's wire: answers are `PolicyDefinition`s, ETags and If-Match, and
bodies read after authentication by the strict JSON parser. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.http.app import create_app
from api.settings import Settings
from models import PolicyDefinition

NAME = "single-name-cap"
CAP: dict[str, Any] = {
    "policy_name": NAME,
    "policy_type": "POSITION_LIMIT",
    "description": "No single name above 10% of NAV",
    "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.10}]},
}
ADDED = {"version", "updated_at", "updated_by"}
KEYS = {"r-key-0001": "reader", "a-key-0003": "admin"}
READER, ADMIN = {"X-API-Key": "r-key-0001"}, {"X-API-Key": "a-key-0003"}
JSON = {"content-type": "application/json"}
LONE_SURROGATE = (
    b'{"policy_name": "single-name-cap", "policy_type": "POSITION_LIMIT", '
    b'"description": "x\\ud800y", '
    b'"rules": {"constraints": [{"kind": "weight_bounds", "max": 0.1}]}}'
)
TRUNCATED = b'{"policy_name": "single-name-cap", "policy_type": "POSI'


def _definition(answer: dict[str, Any]) -> PolicyDefinition:
    """The answer read as a `PolicyDefinition` once the store's own fields are dropped."""
    assert "policy" not in answer, answer
    assert ADDED <= answer.keys(), answer
    return PolicyDefinition.model_validate({k: v for k, v in answer.items() if k not in ADDED})


def _is_policy(r: Response, status: int, version: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["policy_name"] == NAME and body["version"] == version, body
    assert r.headers["ETag"] == f'"{version}"'
    _definition(body)
    return body


def _error(r: Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == error and body["message"], body
    assert isinstance(body["detail"], list)
    return body


def test_every_answer_is_the_definition_with_its_version(client: TestClient) -> None:
    created = _is_policy(client.post("/api/v1/policies", json=CAP), 201, 1)
    assert _definition(created) == PolicyDefinition.model_validate(CAP)
    _is_policy(client.get(f"/api/v1/policies/{NAME}"), 200, 1)
    wider = dict(CAP, rules={"constraints": [{"kind": "weight_bounds", "max": 0.12}]})
    _is_policy(client.put(f"/api/v1/policies/{NAME}", json=wider), 200, 2)
    patched = _is_policy(
        client.patch(f"/api/v1/policies/{NAME}", json={"severity": "HIGH"}), 200, 3
    )
    assert patched["severity"] == "HIGH"
    assert patched["rules"]["constraints"][0]["max"] == 0.12
    disabled = _is_policy(client.delete(f"/api/v1/policies/{NAME}"), 200, 4)
    assert disabled["enabled"] is False


def test_the_list_is_a_list_of_definitions(client: TestClient) -> None:
    for k in range(3):
        assert client.post("/api/v1/policies", json=dict(CAP, policy_name=f"cap-{k}")).is_success
    for params in ({}, {"portfolio_id": "pf-1"}, {"policy_type": "POSITION_LIMIT"}):
        listed = client.get("/api/v1/policies", params=params).json()
        assert [p["policy_name"] for p in listed] == ["cap-0", "cap-1", "cap-2"], params
        assert all(p["version"] == 1 for p in listed)
        assert [_definition(p).policy_name for p in listed] == ["cap-0", "cap-1", "cap-2"]


def test_the_openapi_document_shows_definitions(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    public = schemas["PolicyPublic"]["properties"]
    assert {"policy_name", "policy_type", "rules", "version", "updated_at"} <= public.keys()
    assert "policy" not in public
    ok = "#/components/schemas/PolicyPublic"
    listed = spec["paths"]["/api/v1/policies"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"]["items"]["$ref"] == ok
    for method in ("get", "put", "patch", "delete"):
        op = spec["paths"]["/api/v1/policies/{name}"][method]
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == ok
    for method in ("put", "patch", "delete"):
        op = spec["paths"]["/api/v1/policies/{name}"][method]
        assert "412" in op["responses"], method
        assert any(p["name"] == "if-match" for p in op["parameters"]), method
    bodies = {
        ("/api/v1/policies", "post"): "PolicyDefinition",
        ("/api/v1/policies/{name}", "put"): "PolicyDefinition",
        ("/api/v1/policies/{name}", "patch"): "PolicyPatch",
    }
    for (path, method), model in bodies.items():
        content = spec["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert content["schema"]["$ref"] == f"#/components/schemas/{model}"
        assert content["examples"]
        assert model in schemas


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_if_match_makes_a_change_conditional(client: TestClient, method: str) -> None:
    assert client.post("/api/v1/policies", json=CAP).status_code == 201
    body = {"put": dict(CAP, description="replaced"), "patch": {"description": "patched"}}

    def change(tag: str | bytes) -> Response:
        return client.request(
            method, f"/api/v1/policies/{NAME}", json=body.get(method), headers={"If-Match": tag}
        )

    superscript_one = '"\u00b9"'.encode("latin-1")  # a digit to str.isdigit, not to int()
    stale_tags = ['"2"', 'W/"1"', "1", '"x"', '"7", "0"', superscript_one, '"' + "1" * 5000 + '"']
    for stale in stale_tags:
        r = change(stale)
        error = _error(r, 412, "precondition_failed")
        assert error["detail"] == [{"field": "If-Match", "message": 'the stored version is "1"'}]
        assert r.headers["ETag"] == '"1"'
    assert len(client.get(f"/api/v1/policies/{NAME}/versions").json()) == 1  # nothing written
    _is_policy(change('"3", "1"'), 200, 2)
    _is_policy(change("*"), 200, 3)
    _error(change('"2"'), 412, "precondition_failed")
    _error(client.request(method, "/api/v1/policies/nope", json=body.get(method)), 404, "not_found")


def test_a_lone_surrogate_is_refused_and_nothing_is_stored(client: TestClient) -> None:
    _error(
        client.post("/api/v1/policies", content=LONE_SURROGATE, headers=JSON),
        422,
        "invalid_request",
    )
    _error(client.get(f"/api/v1/policies/{NAME}"), 404, "not_found")
    assert client.get("/api/v1/policies").json() == []

    assert client.post("/api/v1/policies", json=CAP).status_code == 201
    put = client.put(f"/api/v1/policies/{NAME}", content=LONE_SURROGATE, headers=JSON)
    _error(put, 422, "invalid_request")
    patch = b'{"description": "trailing \\udc00"}'
    _error(
        client.patch(f"/api/v1/policies/{NAME}", content=patch, headers=JSON),
        422,
        "invalid_request",
    )
    # Still readable everywhere, still version 1.
    assert client.get("/api/v1/policies").json()[0]["version"] == 1
    assert client.get(f"/api/v1/policies/{NAME}/versions").status_code == 200
    assert client.get(f"/api/v1/policies/{NAME}").json()["description"] == CAP["description"]


def test_patch_bodies_are_json_objects(client: TestClient) -> None:
    assert client.post("/api/v1/policies", json=CAP).status_code == 201
    for body in (b"[1, 2]", b'"advisory"', b'{"severity": "HIGH"', b""):
        r = client.patch(f"/api/v1/policies/{NAME}", content=body, headers=JSON)
        _error(r, 422, "invalid_request")
    r = client.patch(
        f"/api/v1/policies/{NAME}",
        content=b'{"severity": "HIGH"}',
        headers={"content-type": "text/plain"},
    )
    _error(r, 422, "invalid_request")
    assert client.get(f"/api/v1/policies/{NAME}").json()["version"] == 1


@pytest.fixture
def keyed(database_url: str) -> Iterator[TestClient]:
    """The app with API keys: a caller without a key is refused."""
    settings = Settings(database_url=database_url, events="none", api_keys=KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/policies"),
        ("put", f"/api/v1/policies/{NAME}"),
        ("patch", f"/api/v1/policies/{NAME}"),
    ],
)
def test_the_caller_is_checked_before_the_body_is_read(
    keyed: TestClient, method: str, path: str
) -> None:
    assert keyed.post("/api/v1/policies", json=CAP, headers=ADMIN).status_code == 201
    _error(keyed.request(method, path, content=TRUNCATED, headers=JSON), 401, "unauthorized")
    _error(keyed.request(method, path, content=TRUNCATED, headers=JSON | READER), 403, "forbidden")
    _error(
        keyed.request(method, path, content=TRUNCATED, headers=JSON | ADMIN),
        422,
        "invalid_request",
    )
    valid = {"patch": {"severity": "LOW"}}.get(method, CAP)
    if method == "post":
        valid = dict(CAP, policy_name="other-cap")
    r = keyed.request(method, path, json=valid, headers=ADMIN)
    assert r.status_code in (200, 201), r.text

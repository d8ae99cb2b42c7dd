"""API keys and roles, the body size limit, and the refusal to serve openly without keys.

SQLite only: nothing here depends on the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx import Response

from api.cli import main
from api.http.app import create_app
from api.settings import Role, Settings
from api.store.tables import validations
from tests.api.conftest import core_policies, example_request, services_of

KEYS = {"r-key-0001": "reader", "v-key-0002": "validator", "a-key-0003": "admin"}
READER, VALIDATOR, ADMIN = ({"X-API-Key": key} for key in KEYS)


def _fingerprint(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:10]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pes.db'}"


@pytest.fixture
def secured(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, events="none", api_keys=KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for policy in core_policies():
            assert client.post("/api/v1/policies", json=policy, headers=ADMIN).status_code == 201
        yield client


def _assert_json_error(r: Response, status: int, error: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == error, body
    assert body["message"]


def _violation_id(client: TestClient) -> int:
    r = client.post("/api/v1/validate", json=example_request("aapl-overweight"), headers=ADMIN)
    assert r.status_code == 200, r.text
    items = client.get("/api/v1/violations", headers=ADMIN).json()["items"]
    violation_id: int = items[0]["id"]
    return violation_id


def _calls(violation_id: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(role needed, method, path, keyword arguments) of every API operation."""
    policy = core_policies()[0]
    name = policy["policy_name"]
    new = dict(policy, policy_name="brand-new")
    request = example_request("small-rebalance")
    return [
        ("reader", "GET", "/api/v1/policies", {}),
        ("reader", "GET", f"/api/v1/policies/{name}", {}),
        ("reader", "GET", f"/api/v1/policies/{name}/versions", {}),
        ("reader", "GET", "/api/v1/violations", {}),
        ("reader", "GET", "/api/v1/validations/dec-0001", {}),
        ("reader", "GET", f"/api/v1/violations/{violation_id}", {}),
        # The violation's own steps come before the validation below, which may cure it.
        ("admin", "POST", f"/api/v1/violations/{violation_id}/acknowledge", {"json": {}}),
        ("admin", "PATCH", f"/api/v1/violations/{violation_id}", {"json": {"note": "ok"}}),
        ("admin", "POST", f"/api/v1/violations/{violation_id}/reopen", {"json": {}}),
        ("admin", "POST", f"/api/v1/violations/{violation_id}/resolve", {"json": {"reason": "ok"}}),
        (
            "admin",
            "POST",
            "/api/v1/violations/bulk",
            {"json": {"ids": [1], "action": "acknowledge"}},
        ),
        ("validator", "POST", "/api/v1/validate", {"json": request}),
        ("admin", "POST", "/api/v1/policies", {"json": new}),
        ("admin", "PUT", f"/api/v1/policies/{name}", {"json": policy}),
        ("admin", "PATCH", f"/api/v1/policies/{name}", {"json": {"description": "x"}}),
        ("admin", "DELETE", "/api/v1/policies/cash-floor", {}),
    ]


def test_no_key_and_a_bad_key_are_401_json(secured: TestClient) -> None:
    for _, method, path, kwargs in _calls(1):
        r = secured.request(method, path, **kwargs)
        _assert_json_error(r, 401, "unauthorized")
        assert r.headers.get("www-authenticate") == "Bearer"
        for bad in ({"X-API-Key": "nope"}, {"Authorization": "Bearer nope"}, {"X-API-Key": ""}):
            _assert_json_error(
                secured.request(method, path, headers=bad, **kwargs), 401, "unauthorized"
            )


@pytest.mark.parametrize("role", ["reader", "validator", "admin"])
def test_each_role_may_do_exactly_what_it_allows(secured: TestClient, role: str) -> None:
    key = next(k for k, r in KEYS.items() if r == role)
    violation_id = _violation_id(secured)
    for needed, method, path, kwargs in _calls(violation_id):
        r = secured.request(method, path, headers={"X-API-Key": key}, **kwargs)
        if Role(role).allows(Role(needed)):
            assert r.status_code < 300, (role, method, path, r.text)
        else:
            _assert_json_error(r, 403, "forbidden")
            assert needed in r.json()["message"]


def test_reader_cannot_validate_nor_change_policies(secured: TestClient) -> None:
    r = secured.post("/api/v1/validate", json=example_request("small-rebalance"), headers=READER)
    _assert_json_error(r, 403, "forbidden")
    _assert_json_error(
        secured.delete("/api/v1/policies/cash-floor", headers=READER), 403, "forbidden"
    )
    assert secured.get("/api/v1/policies/cash-floor", headers=READER).json()["enabled"]
    with services_of(secured).store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(validations)).scalar() == 0


def test_bearer_token_works(secured: TestClient) -> None:
    assert (
        secured.get("/api/v1/policies", headers={"Authorization": "Bearer r-key-0001"}).status_code
        == 200
    )
    r = secured.post(
        "/api/v1/validate",
        json=example_request("small-rebalance"),
        headers={"Authorization": "bearer v-key-0002"},
    )
    assert r.status_code == 200, r.text


def test_actor_is_the_key_fingerprint_plus_x_actor(secured: TestClient) -> None:
    r = secured.patch("/api/v1/policies/cash-floor", json={"description": "a"}, headers=ADMIN)
    assert r.json()["updated_by"] == _fingerprint("a-key-0003")
    r = secured.patch(
        "/api/v1/policies/cash-floor",
        json={"description": "b"},
        headers={**ADMIN, "X-Actor": "alice"},
    )
    assert r.json()["updated_by"] == f"alice ({_fingerprint('a-key-0003')})"
    versions = secured.get("/api/v1/policies/cash-floor/versions", headers=READER).json()
    assert [v["actor"] for v in versions][-2:] == [
        _fingerprint("a-key-0003"),
        f"alice ({_fingerprint('a-key-0003')})",
    ]
    assert "a-key-0003" not in json.dumps(versions)  # the key itself is never recorded

    r = secured.post(
        "/api/v1/validate",
        json=example_request("aapl-overweight"),
        headers={**VALIDATOR, "X-Actor": "trading-bot"},
    )
    assert r.status_code == 200
    with services_of(secured).store.engine.connect() as conn:
        actor = conn.execute(sa.select(validations.c.actor)).scalar_one()
    assert actor == f"trading-bot ({_fingerprint('v-key-0002')})"

    violation_id = secured.get("/api/v1/violations", headers=READER).json()["items"][0]["id"]
    r = secured.patch(
        f"/api/v1/violations/{violation_id}",
        json={"note": "accepted"},
        headers={**ADMIN, "X-Actor": "bob"},
    )
    assert r.json()["resolved_by"] == f"bob ({_fingerprint('a-key-0003')})"


def test_probes_and_docs_need_no_key(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200
    assert secured.get("/openapi.json").status_code == 200


def test_without_keys_every_caller_is_admin_named_local(database_url: str) -> None:
    settings = Settings(database_url=database_url, events="none")
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/policies", json=core_policies()[0])
        assert r.status_code == 201
        assert r.json()["updated_by"] == "local"


# --- body size -------------------------------------------------------------------------------


@pytest.fixture
def small_bodies(database_url: str) -> Iterator[TestClient]:
    # No policy is stored: the opt-in lets the served request be answered (the subject here
    # is the body, not the policies).
    settings = Settings(
        database_url=database_url,
        events="none",
        api_keys=KEYS,
        max_body_bytes=2048,
        approve_when_no_policy_applies=True,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _padded_request(size: int) -> bytes:
    body = example_request("small-rebalance")
    body["decision"]["strategy"] = ""
    text = json.dumps(body)
    body["decision"]["strategy"] = "x" * max(0, size - len(text))
    return json.dumps(body).encode()


def test_body_over_the_limit_is_413_json(small_bodies: TestClient) -> None:
    big = _padded_request(4096)
    headers = {**ADMIN, "content-type": "application/json"}
    r = small_bodies.post("/api/v1/validate", content=big, headers=headers)
    _assert_json_error(r, 413, "payload_too_large")
    r = small_bodies.post("/api/v1/policies", content=big, headers=headers)
    _assert_json_error(r, 413, "payload_too_large")
    # Checked before authentication: an anonymous flood is refused as cheaply.
    r = small_bodies.post(
        "/api/v1/validate", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_chunked_body_over_the_limit_is_413(small_bodies: TestClient) -> None:
    big = _padded_request(4096)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    headers = {**ADMIN, "content-type": "application/json"}
    r = small_bodies.post("/api/v1/validate", content=chunks(), headers=headers)
    assert "content-length" not in r.request.headers
    _assert_json_error(r, 413, "payload_too_large")


def test_chunked_body_under_the_limit_is_served(small_bodies: TestClient) -> None:
    body = json.dumps(example_request("small-rebalance")).encode()
    assert len(body) < 2048

    def chunks() -> Iterator[bytes]:
        yield body[:100]
        yield body[100:]

    headers = {**VALIDATOR, "content-type": "application/json"}
    r = small_bodies.post("/api/v1/validate", content=chunks(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["decision_id"] == "dec-0002"


# --- binding -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_keys(host: str) -> None:
    assert Settings(host=host).bind_problem() is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "pes.example.com"])
def test_non_loopback_without_keys_is_refused(host: str) -> None:
    problem = Settings(host=host).bind_problem()
    assert problem is not None
    assert host in problem and "PES_API_KEYS" in problem and "--insecure" in problem
    assert Settings(host=host, insecure=True).bind_problem() is None
    assert Settings(host=host, api_keys={"k": "admin"}).bind_problem() is None


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace uvicorn.run: record what would be served instead of serving it."""
    import uvicorn

    served: list[dict[str, Any]] = []

    def run(app: Any, **kwargs: Any) -> None:
        served.append(kwargs)

    monkeypatch.setattr(uvicorn, "run", run)
    return served


def test_serve_on_all_interfaces_without_keys_exits_2(
    no_server: list[dict[str, Any]], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["serve", "--host", "0.0.0.0", "--database-url", database_url])
    assert status == 2
    err = capsys.readouterr().err
    assert "pes serve: refusing to listen on 0.0.0.0 without API keys" in err
    assert "Traceback" not in err
    assert no_server == []


def test_serve_on_all_interfaces_with_insecure_or_keys_starts(
    no_server: list[dict[str, Any]], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["serve", "--host", "0.0.0.0", "--port", "8123", "--database-url", database_url]
    assert main([*argv, "--insecure"]) == 0
    monkeypatch.setenv("PES_API_KEYS", json.dumps({"k": "admin"}))
    assert main(argv) == 0
    assert [(s["host"], s["port"]) for s in no_server] == [("0.0.0.0", 8123)] * 2


def test_serve_on_loopback_without_keys_starts(
    no_server: list[dict[str, Any]], database_url: str
) -> None:
    assert main(["serve", "--database-url", database_url]) == 0
    assert no_server[0]["host"] == "127.0.0.1"

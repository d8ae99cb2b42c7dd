"""Every route with a body authenticates first, then parses the body strictly (api.http.json_body).

A FastAPI `Body` parameter is read and parsed before the route's dependencies run, so an
unauthenticated caller could make the service parse megabytes, and broken JSON without a key
got 422 instead of 401. Policies (converted separately) are not listed here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.http.app import create_app
from api.http.examples import CAPACITY_EXAMPLE, POLICY_EXAMPLE, VALIDATE_EXAMPLE
from api.http.hierarchy_schemas import PORTFOLIO_EXAMPLES
from api.http.reference_schemas import RISK_MODEL_EXAMPLES, UNIVERSE_EXAMPLES
from api.http.routes.constraints import CONSTRAINTS_EXAMPLE
from api.settings import Settings
from tests.api.conftest import TestClient

ADMIN, READER = {"X-API-Key": "a"}, {"X-API-Key": "r"}
LONE = "\ud800"  # json.dumps writes it as the escape \ud800, which json.loads accepts
# (pydantic then refused the str as well; the strict parser now refuses the bytes)


def _with(example: dict[str, Any], path: tuple[str, ...], text: str) -> dict[str, Any]:
    """A deep copy of `example` with `text` at `path` (dict keys)."""
    body = copy.deepcopy(example)
    target = body
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = text
    return body


# (method, path, role needed, a valid body, where a free-text string goes)
ROUTES: list[tuple[str, str, str, dict[str, Any], tuple[str, ...]]] = [
    ("PUT", "/api/v1/portfolios/acme", "admin", PORTFOLIO_EXAMPLES["firm"]["value"], ("name",)),
    (
        "PUT",
        "/api/v1/universes/us-large",
        "admin",
        UNIVERSE_EXAMPLES["universe"]["value"],
        ("description",),
    ),
    (
        "PUT",
        "/api/v1/risk-models/us-2f",
        "admin",
        RISK_MODEL_EXAMPLES["factor"]["value"],
        ("description",),
    ),
    ("PATCH", "/api/v1/violations/1", "admin", {"resolved": True, "note": "ok"}, ("note",)),
    ("POST", "/api/v1/capacity", "validator", CAPACITY_EXAMPLE, ("context", "desk")),
    ("POST", "/api/v1/constraints", "reader", CONSTRAINTS_EXAMPLE, ("context", "desk")),
    ("POST", "/api/v1/validate", "validator", VALIDATE_EXAMPLE, ("decision", "strategy")),
    ("POST", "/api/v1/policies", "admin", POLICY_EXAMPLE, ("description",)),
    ("PATCH", "/api/v1/policies/no-such", "admin", {"description": "d"}, ("description",)),
]
ACCEPTED = {"PUT": 201, "PATCH": 404, "POST": 200}
"""What the example body gets: PUT creates, PATCH finds nothing to change (so the body was
read and the route looked the target up), POST answers -- except these:"""
ACCEPTED_AT = {"/api/v1/policies": 201}
IDS = [f"{method} {path}" for method, path, *_ in ROUTES]


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    """The app with an admin key `a` and a reader key `r`."""
    # No policy is stored: the opt-in lets the validate example be answered (the subject
    # here is how bodies are read, not which policies apply).
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'pes.db'}",
        events="none",
        api_keys={"a": "admin", "r": "reader"},
        approve_when_no_policy_applies=True,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "role", "body", "field"), ROUTES, ids=IDS)
def test_broken_json_without_a_key_is_401(
    keyed: TestClient, method: str, path: str, role: str, body: Any, field: Any
) -> None:
    truncated = json.dumps(body).encode()[:25]
    r = keyed.request(method, path, content=truncated, headers={"content-type": "application/json"})
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path"), [(m, p) for m, p, role, *_ in ROUTES if role != "reader"]
)
def test_a_role_too_low_is_403_before_the_body_is_read(
    keyed: TestClient, method: str, path: str
) -> None:
    headers = {**READER, "content-type": "application/json"}
    r = keyed.request(method, path, content=b'{"not json', headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"


@pytest.mark.parametrize(("method", "path", "role", "body", "field"), ROUTES, ids=IDS)
def test_a_lone_surrogate_is_422_and_nothing_is_stored(
    keyed: TestClient, method: str, path: str, role: str, body: Any, field: Any
) -> None:
    sent = json.dumps(_with(body, field, f"x{LONE}y")).encode()
    assert b"\\ud800" in sent
    r = keyed.request(method, path, content=sent, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    if method == "PUT":
        assert keyed.get(path, headers=ADMIN).status_code == 404


@pytest.mark.parametrize(("method", "path", "role", "body", "field"), ROUTES, ids=IDS)
def test_the_example_body_is_accepted_by_the_right_role(
    keyed: TestClient, method: str, path: str, role: str, body: Any, field: Any
) -> None:
    key = READER if role == "reader" else ADMIN
    r = keyed.request(method, path, json=_with(body, field, "text"), headers=key)
    assert r.status_code == ACCEPTED_AT.get(path, ACCEPTED[method]), r.text


def test_every_body_route_documents_its_schema_and_examples(keyed: TestClient) -> None:
    spec = keyed.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    templates = {
        "/api/v1/portfolios/acme": "/api/v1/portfolios/{portfolio_id}",
        "/api/v1/universes/us-large": "/api/v1/universes/{universe_id}",
        "/api/v1/risk-models/us-2f": "/api/v1/risk-models/{risk_model_id}",
        "/api/v1/violations/1": "/api/v1/violations/{violation_id}",
        "/api/v1/policies/no-such": "/api/v1/policies/{name}",
    }
    for method, path, *_ in ROUTES:
        operation = spec["paths"][templates.get(path, path)][method.lower()]
        content = operation["requestBody"]["content"]["application/json"]
        assert content["examples"], path
        name = content["schema"]["$ref"].rsplit("/", 1)[-1]
        assert name in schemas, (path, name)


def test_an_unauthenticated_body_is_never_read(tmp_path: Path) -> None:
    """The app asks the server for no body message before refusing the caller."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'pes.db'}",
        events="none",
        api_keys={"a": "admin", "r": "reader"},
    )
    app = create_app(settings)
    reads: list[str] = []

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if scope["type"] == "http":
                reads.append(scope["path"])
            return message

        await app(scope, counted, send)

    big = b'{"name": "' + b"x" * 1_000_000 + b'"}'
    with TestClient(counting, raise_server_exceptions=False) as client:
        for method, path, *_ in ROUTES:
            r = client.request(
                method, path, content=big, headers={"content-type": "application/json"}
            )
            assert r.status_code == 401, (path, r.text)
    assert reads == []

"""The OpenAPI document (/openapi.json, /docs): every endpoint, with working examples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.settings import Settings
from tests.api.conftest import core_policies

ENDPOINTS = {
    ("post", "/api/v1/validate"),
    ("post", "/api/v1/capacity"),
    ("post", "/api/v1/constraints"),
    ("get", "/api/v1/policies"),
    ("post", "/api/v1/policies"),
    ("get", "/api/v1/policies/{name}"),
    ("put", "/api/v1/policies/{name}"),
    ("patch", "/api/v1/policies/{name}"),
    ("delete", "/api/v1/policies/{name}"),
    ("get", "/api/v1/policies/{name}/versions"),
    ("get", "/api/v1/portfolios"),
    ("get", "/api/v1/portfolios/{portfolio_id}"),
    ("put", "/api/v1/portfolios/{portfolio_id}"),
    ("delete", "/api/v1/portfolios/{portfolio_id}"),
    ("get", "/api/v1/portfolios/{portfolio_id}/policies"),
    ("get", "/api/v1/violations"),
    ("patch", "/api/v1/violations/{violation_id}"),
    ("get", "/api/v1/validations/{decision_id}"),
    ("post", "/api/v1/replay"),
    ("get", "/api/v1/analytics/violations"),
    ("get", "/api/v1/analytics/blocking"),
    ("get", "/api/v1/universes"),
    ("get", "/api/v1/universes/{universe_id}"),
    ("put", "/api/v1/universes/{universe_id}"),
    ("get", "/api/v1/universes/{universe_id}/versions"),
    ("get", "/api/v1/risk-models"),
    ("get", "/api/v1/risk-models/{risk_model_id}"),
    ("put", "/api/v1/risk-models/{risk_model_id}"),
    ("get", "/api/v1/risk-models/{risk_model_id}/versions"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    *(
        operation
        for prefix in ("/api/policy", "/api/v1/policy")
        for operation in (
            ("get", f"{prefix}/status"),
            ("get", prefix),
            ("patch", prefix),
            ("post", f"{prefix}/reset"),
            ("get", f"{prefix}/risk_mode"),
            ("post", f"{prefix}/risk_mode/{{mode}}"),
            ("get", f"{prefix}/allowed_symbols"),
            ("get", f"{prefix}/model_versions"),
            ("get", f"{prefix}/versions"),
        )
    ),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path: Path = tmp_path_factory.mktemp("openapi") / "pes.db"
    settings = Settings(database_url=f"sqlite:///{path}", events="none", api_keys={})
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    document: dict[str, Any] = r.json()
    return document


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, ops in spec["paths"].items() for method in ops}


def _request_examples(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """The named request examples of an operation (content-level `examples`)."""
    body = spec["paths"][path][method].get("requestBody")
    assert body is not None, f"{method.upper()} {path} documents no request body"
    examples: dict[str, Any] = body["content"]["application/json"].get("examples", {})
    return examples


def test_every_endpoint_is_documented(spec: dict[str, Any]) -> None:
    missing = ENDPOINTS - _operations(spec)
    assert not missing, sorted(missing)
    for method, path in ENDPOINTS:
        op = spec["paths"][path][method]
        assert op.get("summary"), f"{method.upper()} {path} has no summary"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/validate"),
        ("post", "/api/v1/capacity"),
        ("post", "/api/v1/policies"),
        ("put", "/api/v1/policies/{name}"),
        ("patch", "/api/v1/policies/{name}"),
        ("put", "/api/v1/portfolios/{portfolio_id}"),
        ("put", "/api/v1/universes/{universe_id}"),
        ("put", "/api/v1/risk-models/{risk_model_id}"),
        ("patch", "/api/policy"),
        ("patch", "/api/v1/policy"),
        ("post", "/api/v1/replay"),
    ],
)
def test_request_bodies_have_examples(spec: dict[str, Any], method: str, path: str) -> None:
    examples = _request_examples(spec, method, path)
    assert examples, f"{method.upper()} {path} has no request example"
    for example in examples.values():
        assert example.get("summary") and example.get("value")


def test_every_request_body_has_an_example(spec: dict[str, Any]) -> None:
    """The issue: "Every endpoint in OpenAPI (/docs) with examples"."""
    without = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "requestBody" not in op:
                continue
            content = op["requestBody"]["content"]["application/json"]
            if not (content.get("examples") or content.get("example")):
                without.append(f"{method.upper()} {path}")
    assert not without, f"request bodies without an example: {without}"


def test_the_examples_are_accepted_by_the_service(client: TestClient, spec: dict[str, Any]) -> None:
    for policy in core_policies():
        r = client.post("/api/v1/policies", json=policy)
        assert r.status_code in (201, 409), r.text

    # Reference data first: the by-reference validate example names it.
    for path, prefix in (
        ("/api/v1/universes/{universe_id}", "/api/v1/universes"),
        ("/api/v1/risk-models/{risk_model_id}", "/api/v1/risk-models"),
    ):
        for example in _request_examples(spec, "put", path).values():
            r = client.put(f"{prefix}/{example['value']['id']}", json=example["value"])
            assert r.status_code in (200, 201), r.text

    validates = _request_examples(spec, "post", "/api/v1/validate")
    assert set(validates) == {"adjust", "by_reference"}
    for name, validate in validates.items():
        r = client.post("/api/v1/validate", json=validate["value"])
        assert r.status_code == 200, r.text
        used = r.json()["reference_data"]
        if name == "by_reference":
            assert used["risk_model"] == {"id": "us-2f", "version": 1}
            assert used["universe"] == {"id": "us-large", "version": 1}
        else:
            assert used is None

    # The replay examples: the adjust example's decision was just logged (core.yaml's
    # single-name-cap is among its policies); each example answers, whatever it matches.
    replays = _request_examples(spec, "post", "/api/v1/replay")
    assert set(replays) == {"applied", "changed_limit", "stored_now"}
    for example in replays.values():
        r = client.post("/api/v1/replay", json=example["value"])
        assert r.status_code == 200, r.text
    everything = client.post(
        "/api/v1/replay", json={"candidate": replays["changed_limit"]["value"]["candidate"]}
    )
    assert everything.status_code == 200, everything.text
    assert everything.json()["summary"]["replayed"] >= 1

    for example in _request_examples(spec, "post", "/api/v1/capacity").values():
        r = client.post("/api/v1/capacity", json=example["value"])
        assert r.status_code == 200, r.text
        assert r.json()["base_compliant"], r.text

    (policy,) = _request_examples(spec, "post", "/api/v1/policies").values()
    r = client.post("/api/v1/policies", json=policy["value"])
    assert r.status_code in (201, 409), r.text  # core.yaml has a policy of the same name
    name = policy["value"]["policy_name"]
    r = client.put(f"/api/v1/policies/{name}", json=policy["value"])
    assert r.status_code == 200, r.text

    for patch in _request_examples(spec, "patch", "/api/v1/policies/{name}").values():
        r = client.patch(f"/api/v1/policies/{name}", json=patch["value"])
        assert r.status_code == 200, r.text

    # The node examples, parents first (the fund the portfolio example names is created).
    nodes = _request_examples(spec, "put", "/api/v1/portfolios/{portfolio_id}")
    firm, portfolio = nodes["firm"]["value"], nodes["portfolio"]["value"]
    for node in (
        firm,
        {"portfolio_id": portfolio["parent_id"], "name": "Fund", "parent_id": firm["portfolio_id"]},
        portfolio,
    ):
        r = client.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node)
        assert r.status_code in (200, 201), r.text


def test_documented_error_body_is_the_one_sent(spec: dict[str, Any]) -> None:
    """Errors are sent as ErrorResponse {error, message, detail: [{field, message}]}; a
    client generated from the document must expect that shape, not FastAPI's default."""
    wrong = []
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/"):
            continue  # /readyz answers 503 with its checks, not an error body
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                ref = (schema or {}).get("$ref", "")
                if not ref.endswith("/ErrorResponse"):
                    wrong.append(f"{method.upper()} {path} {status}: {schema}")
    assert not wrong, "error responses not documented as ErrorResponse:\n" + "\n".join(wrong)


def test_docs_page_is_served(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "swagger" in r.text.lower()
    assert "/openapi.json" in r.text


def test_the_global_policy_examples_are_accepted(client: TestClient, spec: dict[str, Any]) -> None:
    for example in _request_examples(spec, "patch", "/api/policy").values():
        r = client.patch("/api/policy", json=example["value"])
        assert r.status_code == 200, r.text
    answer = spec["paths"]["/api/policy"]["get"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"]["$ref"].endswith("/GlobalPolicyPublic")

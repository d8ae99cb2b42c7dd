"""Bodies read by `api.http.json_body`: the same answers and errors as FastAPI's own parsing."""

from __future__ import annotations

import json
from typing import Any

from tests.api.conftest import TestClient, example_request


def _post(client: TestClient, content: bytes, content_type: str | None) -> Any:
    headers = {} if content_type is None else {"content-type": content_type}
    return client.post("/api/v1/validate", content=content, headers=headers)


def test_json_media_types_and_no_content_type_are_read(client: TestClient) -> None:
    body = example_request("small-rebalance")
    body["policies"] = []  # a dry run: nothing stored
    for i, content_type in enumerate(
        [None, "application/json", "application/json; charset=utf-8", "application/vnd.pes+json"]
    ):
        body["decision"]["decision_id"] = f"media-{i}"
        r = _post(client, json.dumps(body).encode(), content_type)
        assert r.status_code == 200, (content_type, r.text)
        assert r.json()["decision_id"] == f"media-{i}"


def test_errors_name_the_field_under_the_body(client: TestClient) -> None:
    body = example_request("small-rebalance")
    body["decision"]["trades"][0]["quantity"] = "many"
    r = _post(client, json.dumps(body).encode(), "application/json")
    assert r.status_code == 422
    fields = [d["field"] for d in r.json()["detail"]]
    assert "decision.trades[0].quantity" in fields


def test_other_media_types_and_broken_json_are_422(client: TestClient) -> None:
    body = json.dumps(example_request("small-rebalance")).encode()
    for content, content_type in [
        (body, "text/plain"),
        (body, "application/x-www-form-urlencoded"),
        (b'{"decision": ', "application/json"),
        (b"", "application/json"),
    ]:
        r = _post(client, content, content_type)
        assert r.status_code == 422, (content_type, content[:20])
        assert r.json()["error"] == "invalid_request"


def test_the_request_schema_is_in_the_openapi_components(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/validate"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[-1]
    schemas = spec["components"]["schemas"]
    assert name == "PolicyValidationRequest"
    assert set(schemas[name]["properties"]) >= {"decision", "portfolio_state"}
    # Every reference in the document resolves.
    text = json.dumps(spec)
    for part in text.split('"$ref": "#/components/schemas/')[1:]:
        assert part.split('"', 1)[0] in schemas

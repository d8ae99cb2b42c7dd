"""A huge integer in a request's free-form context is a 422 naming it, never a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from tests.api.conftest import TestClient, example_request

HUGE = "1" + "0" * 400  # 401 digits


def _with_huge_context(body: dict[str, Any]) -> str:
    """`body` as JSON text with the context `{"foo": <401 digits>}`."""
    return json.dumps({**body, "context": {"foo": 0}}).replace('"foo": 0', f'"foo": {HUGE}')


def _post(client: TestClient, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = _with_huge_context(body)
    r = client.post(url, content=raw, headers={"content-type": "application/json"})
    return r.status_code, r.json()


def test_a_401_digit_context_integer_is_422_on_validate(client: TestClient) -> None:
    body = example_request("small-rebalance")
    body["policies"] = []
    status, answer = _post(client, "/api/v1/validate", body)
    assert status == 422, answer
    assert answer["detail"] == [
        {
            "field": "context.foo",
            "message": "Input should be an integer within ±(2**53 - 1), which every JSON "
            "consumer reads exactly; send a larger one as a string",
        }
    ]


def test_a_401_digit_context_integer_is_422_on_export_and_capacity(client: TestClient) -> None:
    state = example_request("small-rebalance")["portfolio_state"]
    for url in ("/api/v1/constraints", "/api/v1/capacity"):
        status, answer = _post(client, url, {"portfolio_state": state, "policies": []})
        assert status == 422, (url, answer)
        assert [d["field"] for d in answer["detail"]] == ["context.foo"]


def test_the_cli_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = example_request("small-rebalance")
    body["policies"] = []
    file = tmp_path / "big.json"
    file.write_text(_with_huge_context(body), encoding="utf-8")
    assert main(["validate", str(file)]) == 2
    assert f"{file}: context.foo: Input should be an integer within" in capsys.readouterr().err

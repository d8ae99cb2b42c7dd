"""Custom expressions at the edges: policies are refused when stored (HTTP and `pes policies
apply`) and validation requests when their data does not fit (HTTP 422, `pes validate`
exit 2), each naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import main
from tests.api.conftest import TestClient
from tests.builders import policy, request

GOOD = 'sum(w[sector == "Energy"]) <= 0.25'  # 20% before, 26.7% after buying CCC
BAD = 'abs(w["AAA"]) >= 0.01'
BAD_REASON = 'abs(w["AAA"]) >= 0.01: a convex expression can only be bounded from above (<=)'
FIELD = "rules.constraints[0].expr"


def _policy(expr: str, name: str = "custom") -> dict[str, Any]:
    return policy(name, {"kind": "expression", "expr": expr})


def _request(expr: str, **extra: Any) -> dict[str, Any]:
    req = request(
        {"AAA": 200, "CCC": 300},
        [("CCC", "BUY", 100)],
        policies=[policy("custom", {"kind": "expression", "expr": expr, **extra})],
    )
    return req.model_dump(mode="json", exclude_none=True)


def _detail(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(d["field"], d["message"]) for d in response.json()["detail"]]


def test_create_replace_and_patch_refuse_a_non_convex_expression(client: TestClient) -> None:
    assert _detail(client.post("/api/v1/policies", json=_policy(BAD))) == [(FIELD, BAD_REASON)]
    assert client.post("/api/v1/policies", json=_policy(GOOD)).status_code == 201
    assert _detail(client.put("/api/v1/policies/custom", json=_policy(BAD))) == [
        (FIELD, BAD_REASON)
    ]
    patch = {"rules": {"constraints": [{"kind": "expression", "expr": "sum(w) <= "}]}}
    [(field, message)] = _detail(client.patch("/api/v1/policies/custom", json=patch))
    assert field == FIELD
    assert message.startswith("syntax error: the expression ends too early")
    versions = client.get("/api/v1/policies/custom/versions").json()
    assert len(versions) == 1  # nothing refused was stored


@pytest.mark.parametrize(
    ("expr", "extra", "field", "named"),
    [
        ("sum(w * esg) <= 1", {}, "portfolio_state.instruments[0].attributes.esg", "'esg'"),
        ('w["ZZZ"] <= 0.1', {}, "portfolio_state.instruments", "'ZZZ'"),
        (BAD, {}, "policies[0].rules.constraints[0].expr", "bounded from above"),
    ],
)
def test_validate_names_what_is_missing_or_wrong(
    client: TestClient, expr: str, extra: dict[str, Any], field: str, named: str
) -> None:
    [(got_field, message)] = _detail(client.post("/api/v1/validate", json=_request(expr, **extra)))
    assert got_field == field
    assert named in message


def test_validate_answers_an_expression_policy(client: TestClient) -> None:
    r = client.post("/api/v1/validate", json=_request(GOOD))
    assert r.status_code == 200, r.text
    [violation] = r.json()["violations"]
    assert violation["violation_type"] == "expression.max"
    assert violation["subject"] is None
    assert violation["description"].startswith(f"expression {GOOD[:-7]}")
    assert r.json()["adjusted_decision"]["is_compliant"] is True


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    return status, capsys.readouterr().err


def test_cli_validate_exits_2_naming_the_attribute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(_request("sum(w * esg) <= 1")), encoding="utf-8")
    status, err = _run(capsys, "validate", path)
    assert status == 2
    assert "attributes.esg" in err and "'esg'" in err and "Traceback" not in err


def test_cli_apply_refuses_a_bad_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump([_policy(GOOD, "good"), _policy(BAD)]), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'pes.db'}"
    status, err = _run(capsys, "policies", "apply", path, "--database-url", db)
    assert status == 2
    assert f"{path}[1]: {FIELD}: {BAD_REASON}" in err
    status, _ = _run(capsys, "policies", "list", "--database-url", db)
    assert status == 0
    assert capsys.readouterr().out == ""  # nothing was stored

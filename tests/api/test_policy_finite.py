"""Store-time finiteness: a policy whose numbers are or fold to inf/NaN is refused where it
enters (POST, PUT, PATCH, `pes policies apply`), naming the policy and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from api.cli import main
from engine.compile.language import NonFiniteError, check_finite, check_policy
from engine.compile.language.expression import parse
from engine.compile.language.finite import scale
from models import PolicyDefinition

NAME = "custom-cap"

OVERFLOWING = [
    "sum(w) * 1e308 * 1e308 <= 1",  # the coefficient overflows
    "1e308 * 1e308 * sum(w) <= 1",
    "sum(w) / 1e-320 <= 1",  # dividing by a subnormal overflows
    "sum(w) <= 1e400",  # the literal itself is inf
    "sum(w) <= 1e308 * 10",  # the limit folds to inf
    "0 <= sum(w) <= 1e308 + 1e308",
    "norm2(w * 1e300 * 1e300) <= 1",
    "sum(w) + sum_largest(w * 1e200 * 1e200, 2) <= 1",
    "sum(w[beta > 1e999]) <= 0.1",  # a selection compares with inf
]
FINE = [
    "sum(w) * 1e300 <= 1",
    "sum(w) <= 1e308",
    "sum(w[beta > 1.5]) / 1e-300 <= 1e10",
    "max(abs(w - w0)) <= 0.05",
]


def _policy(expr: str) -> dict[str, Any]:
    return {
        "policy_name": NAME,
        "policy_type": "INVESTMENT_MANDATE",
        "rules": {
            "constraints": [
                {"kind": "weight_bounds", "max": 0.5},
                {"kind": "expression", "expr": expr},
            ]
        },
    }


@pytest.mark.parametrize("expr", OVERFLOWING)
def test_an_overflowing_expression_is_refused(expr: str) -> None:
    policy = PolicyDefinition.model_validate(_policy(expr))
    with pytest.raises(NonFiniteError) as caught:
        check_policy(policy, prefix="policies[0].")
    assert caught.value.field == "policies[0].rules.constraints[1].expr"
    assert f"policy {NAME!r}" in caught.value.message


@pytest.mark.parametrize("expr", FINE)
def test_large_but_finite_expressions_are_accepted(expr: str) -> None:
    check_policy(PolicyDefinition.model_validate(_policy(expr)))


def test_the_scale_multiplies_numbers_and_adds_terms() -> None:
    tree = parse('2 * sum(w) + 3 * w0["AAPL"] / 4 <= 1')
    assert scale(tree.operands[0]) == pytest.approx(2 + 3 / 4)  # type: ignore[attr-defined]


def test_every_number_of_the_definition_is_checked() -> None:
    """The models refuse inf/NaN; a definition built around them is still caught."""
    policy = PolicyDefinition.model_validate(_policy("sum(w) <= 1"))
    bounds = policy.rules.constraints[0].model_construct(kind="weight_bounds", max=float("nan"))
    broken = policy.model_copy(
        update={"rules": policy.rules.model_copy(update={"constraints": [bounds]})}
    )
    with pytest.raises(NonFiniteError) as caught:
        check_finite(broken)
    assert caught.value.field == "rules.constraints[0].max"


def _refused(r: Any, field: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_input", body
    assert [d["field"] for d in body["detail"]] == [field], body
    assert NAME in body["message"] and field in body["message"], body


def test_the_api_refuses_it_on_create_replace_and_patch(client: TestClient) -> None:
    field = "rules.constraints[1].expr"
    bad = _policy(OVERFLOWING[0])
    _refused(client.post("/api/v1/policies", json=bad), field)
    assert client.get("/api/v1/policies").json() == []

    good = _policy("sum(w) <= 1")
    assert client.post("/api/v1/policies", json=good).status_code == 201
    _refused(client.put(f"/api/v1/policies/{NAME}", json=bad), field)
    _refused(client.patch(f"/api/v1/policies/{NAME}", json={"rules": bad["rules"]}), field)
    assert client.get(f"/api/v1/policies/{NAME}").json()["version"] == 1
    # JSON's own overflow: 1e999 parses to inf and is refused by the model.
    r = client.post(
        "/api/v1/policies",
        content=b'{"policy_name": "x", "policy_type": "POSITION_LIMIT", '
        b'"rules": {"constraints": [{"kind": "weight_bounds", "max": 1e999}]}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text


def test_policies_apply_refuses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump([_policy(OVERFLOWING[0])]), encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'pes.db'}"
    assert main(["policies", "apply", str(path), "--database-url", db]) == 2
    err = capsys.readouterr().err
    assert "rules.constraints[1].expr" in err and NAME in err and "not finite" in err, err

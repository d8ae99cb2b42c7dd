"""Conditional policies and per-context limits over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.builders import policy, request

DEFENSIVE_CAP = policy(
    "single-name-cap",
    {
        "kind": "weight_bounds",
        "max": {
            "by": "risk_mode",
            "values": {"AGGRESSIVE": 0.12, "NORMAL": 0.10, "DEFENSIVE": 0.06},
        },
    },
)
STRESS_SECTORS = policy(
    "stress-sector-cap",
    {"kind": "group_limit", "attribute": "sector", "max": 0.12},
    policy_type="SECTOR_LIMIT",
    when="risk_mode == 'DEFENSIVE' or vix > 30",
)


def _body(context: dict[str, Any], decision_id: str, **fields: Any) -> dict[str, Any]:
    """NAV 110,000; AAA 50 held at 100, the decision buys 60: AAA at 10%, Tech at 14.5%."""
    body = request(
        {"AAA": 50, "BBB": 50},
        [("AAA", "BUY", 60)],
        cash=100_000.0,
        context=context,
        mode="validate",
        **fields,
    ).model_dump(mode="json", exclude_none=True)
    body["decision"]["decision_id"] = decision_id
    return body


def _error(response: Any, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    assert answer["error"] == error
    assert "Traceback" not in response.text
    return answer


def _create(client: TestClient, *policies: dict[str, Any]) -> None:
    for body in policies:
        r = client.post("/api/v1/policies", json=body)
        assert r.status_code == 201, r.text


def test_stored_conditional_and_contextual_policies_round_trip(client: TestClient) -> None:
    _create(client, DEFENSIVE_CAP, STRESS_SECTORS)
    stored = client.get("/api/v1/policies/single-name-cap").json()
    assert stored["rules"]["constraints"][0]["max"]["values"]["DEFENSIVE"] == 0.06
    assert client.get("/api/v1/policies/stress-sector-cap").json()["when"] == (
        "risk_mode == 'DEFENSIVE' or vix > 30"
    )


def _risk_mode(client: TestClient, mode: str) -> None:
    """Store the global policy's risk mode: what stored policies read (docs/global-policy.md)."""
    r = client.post(f"/api/policy/risk_mode/{mode}")
    assert r.status_code == 200, r.text


def test_the_context_chooses_policies_and_limits(client: TestClient) -> None:
    _create(client, DEFENSIVE_CAP, STRESS_SECTORS)
    _risk_mode(client, "AGGRESSIVE")
    calm = client.post("/api/v1/validate", json=_body({"vix": 15}, "a"))
    assert calm.status_code == 200, calm.text
    answer = calm.json()
    assert answer["is_compliant"] and answer["policies_checked"] == ["single-name-cap"]
    notes = {n["policy_name"]: n for n in answer["context_resolution"]}
    assert notes["stress-sector-cap"]["applies"] is False
    assert notes["single-name-cap"]["limits"][0]["value"] == 0.12

    _risk_mode(client, "DEFENSIVE")
    stressed = client.post("/api/v1/validate", json=_body({"vix": 15}, "b"))
    assert stressed.status_code == 200, stressed.text
    answer = stressed.json()
    assert not answer["is_compliant"]
    assert answer["policies_checked"] == ["single-name-cap", "stress-sector-cap"]
    found = {(v["policy_name"], v["subject"], v["limit"]) for v in answer["violations"]}
    assert found == {("single-name-cap", "AAA", 0.06), ("stress-sector-cap", "Tech", 0.12)}


def test_a_malformed_condition_is_422_naming_the_field_and_position(client: TestClient) -> None:
    bad = {**STRESS_SECTORS, "when": "risk_mode == 'DEFENSIVE' or vix >"}
    answer = _error(client.post("/api/v1/policies", json=bad), 422, "invalid_request")
    (detail,) = answer["detail"]
    assert detail["field"] == "when"
    assert "line 1, column 34" in detail["message"]
    assert "ends too early; expected a number" in detail["message"]
    assert client.get("/api/v1/policies").json() == []


def test_never_eval_through_the_api(client: TestClient) -> None:
    bad = {**STRESS_SECTORS, "when": "__import__('os').system('touch pwned')"}
    answer = _error(client.post("/api/v1/policies", json=bad), 422, "invalid_request")
    assert answer["detail"][0]["field"] == "when"
    assert "line 1, column 11: unexpected '('" in answer["detail"][0]["message"]


def test_a_patch_to_a_malformed_condition_is_422(client: TestClient) -> None:
    _create(client, STRESS_SECTORS)
    r = client.patch("/api/v1/policies/stress-sector-cap", json={"when": "vix > 'high'"})
    answer = _error(r, 422, "invalid_policy")
    assert answer["detail"][0]["field"] == "when"
    assert "`>` compares numbers" in answer["detail"][0]["message"]
    assert len(client.get("/api/v1/policies/stress-sector-cap/versions").json()) == 1


def test_a_bad_contextual_limit_is_422_naming_the_value(client: TestClient) -> None:
    bad = policy("leverage", {"kind": "gross_exposure", "max": 1.0})
    bad["rules"]["constraints"][0]["max"] = {"by": "risk_mode", "values": {"DEFENSIVE": -0.6}}
    answer = _error(client.post("/api/v1/policies", json=bad), 422, "invalid_request")
    fields = [d["field"] for d in answer["detail"]]
    assert fields == ["rules.constraints[0].gross_exposure.max.values.DEFENSIVE"]
    assert "greater than or equal to 0" in answer["detail"][0]["message"]


def test_an_inline_malformed_condition_is_422(client: TestClient) -> None:
    body = _body({"risk_mode": "NORMAL"}, "c", policies=[DEFENSIVE_CAP])
    body["policies"].append({**STRESS_SECTORS, "when": "risk_mode = 'DEFENSIVE'"})
    answer = _error(client.post("/api/v1/validate", json=body), 422, "invalid_request")
    assert [d["field"] for d in answer["detail"]] == ["policies[1].when"]
    assert "write ==" in answer["detail"][0]["message"]


def test_a_missing_context_key_is_422_naming_policy_and_key(client: TestClient) -> None:
    # The stored global policy always gives `risk_mode`: a limit by another key is missed.
    by_regime = policy(
        "single-name-cap",
        {"kind": "weight_bounds", "max": {"by": "regime", "values": {"calm": 0.12}}},
    )
    _create(client, by_regime)
    answer = _error(client.post("/api/v1/validate", json=_body({}, "d")), 422, "invalid_input")
    (detail,) = answer["detail"]
    assert detail["field"] == "policies[single-name-cap].rules.constraints[0].max"
    assert "'single-name-cap'" in detail["message"]
    assert "context.regime" in detail["message"]


def test_a_condition_over_a_missing_or_mistyped_key_is_422(client: TestClient) -> None:
    _create(client, STRESS_SECTORS)
    missing = client.post("/api/v1/validate", json=_body({"risk_mode": "NORMAL"}, "e"))
    answer = _error(missing, 422, "invalid_input")
    assert answer["detail"][0]["field"] == "context.vix"
    assert "'stress-sector-cap'" in answer["detail"][0]["message"]
    mistyped = client.post(
        "/api/v1/validate", json=_body({"risk_mode": "NORMAL", "vix": "high"}, "f")
    )
    answer = _error(mistyped, 422, "invalid_input")
    assert answer["detail"][0]["field"] == "context.vix"
    assert "the text 'high'" in answer["detail"][0]["message"]

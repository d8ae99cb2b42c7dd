"""POST /api/v1/capacity through the real app: answers, stored policies, 422 field paths."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.builders import instrument, policy

CAP = policy("cap", {"kind": "weight_bounds", "min": 0.0, "max": 0.25})
TECH = policy(
    "tech", {"kind": "group_limit", "attribute": "sector", "max": 0.35}, policy_type="SECTOR_LIMIT"
)


def _state() -> dict[str, Any]:
    return {
        "portfolio_id": "p-1",
        "cash": 30_000.0,
        "positions": [
            {"symbol": "AAA", "quantity": 200},
            {"symbol": "BBB", "quantity": 100},
            {"symbol": "CCC", "quantity": 300},
            {"symbol": "DDD", "quantity": 100},
        ],  # NAV 100,000: AAA 20%, BBB 10%, CCC 30%, DDD 10%; Tech 30%, Energy 30%
        "instruments": [instrument(s, lot_size=10) for s in ("AAA", "BBB", "CCC", "DDD", "EEE")],
    }


def _body(**fields: Any) -> dict[str, Any]:
    return {"portfolio_state": _state(), "policies": [CAP, TECH], **fields}


def _validate(client: TestClient, trades: list[dict[str, Any]], policies: Any) -> bool:
    body: dict[str, Any] = {
        "decision": {"decision_id": f"v-{len(trades)}-{trades}", "portfolio_id": "p-1"},
        "portfolio_state": _state(),
        "mode": "validate",
    }
    body["decision"]["trades"] = trades
    if policies is not None:
        body["policies"] = policies
    r = client.post("/api/v1/validate", json=body)
    assert r.status_code == 200, r.text
    compliant: bool = r.json()["is_compliant"]
    assert (r.json()["sensitivity"] is None) == compliant
    return compliant


def test_capacity_answers_are_exact_through_validate(client: TestClient) -> None:
    r = client.post("/api/v1/capacity", json=_body())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["base"] == "portfolio" and answer["base_compliant"]
    assert [s["symbol"] for s in answer["symbols"]] == ["AAA", "BBB", "CCC", "DDD"]
    aaa = answer["symbols"][0]
    assert aaa["buy"]["shares"] == 50 and aaa["buy"]["status"] == "limited"
    assert {b["policy_name"] for b in aaa["buy"]["binding"]} == {"cap", "tech"}
    assert aaa["sell"]["shares"] == 200
    for entry in answer["symbols"]:
        for side in ("BUY", "SELL"):
            limit = entry[side.lower()]
            if limit["status"] != "limited":
                continue
            extra = [{"symbol": entry["symbol"], "side": side, "quantity": limit["shares"]}]
            if limit["shares"] > 0:
                assert _validate(client, extra, [CAP, TECH])
            extra[0]["quantity"] = limit["shares"] + 10
            assert not _validate(client, extra, [CAP, TECH])


def test_capacity_uses_the_stored_policies(client: TestClient) -> None:
    for p in (CAP, TECH):
        assert client.post("/api/v1/policies", json=p).status_code == 201
    body = _body(symbols=["BBB", "EEE"], applicable_policies=["tech"])
    del body["policies"]
    r = client.post("/api/v1/capacity", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["policies_checked"] == ["tech"]
    bbb, eee = answer["symbols"]
    assert bbb["buy"]["shares"] == 50  # Tech 30% of 35%
    assert eee["buy"]["shares"] == 50 and eee["quantity"] == 0  # Energy (CCC) 30% of 35%


def test_capacity_beyond_a_decision(client: TestClient) -> None:
    decision = {
        "decision_id": "d-1",
        "portfolio_id": "p-1",
        "trades": [{"symbol": "AAA", "side": "BUY", "quantity": 30}],
    }
    r = client.post("/api/v1/capacity", json=_body(decision=decision, symbols=["AAA"]))
    assert r.status_code == 200, r.text
    (aaa,) = r.json()["symbols"]
    assert r.json()["base"] == "decision"
    assert aaa["quantity"] == 230 and aaa["buy"]["shares"] == 20


def test_capacity_of_a_non_compliant_decision_is_not_evaluated(client: TestClient) -> None:
    decision = {
        "decision_id": "d-2",
        "portfolio_id": "p-1",
        "trades": [{"symbol": "AAA", "side": "BUY", "quantity": 100}],
    }
    r = client.post("/api/v1/capacity", json=_body(decision=decision))
    assert r.status_code == 200, r.text
    assert not r.json()["base_compliant"]
    assert {s["buy"]["status"] for s in r.json()["symbols"]} == {"not_evaluated"}


def _fields(r: Any) -> set[str]:
    assert r.status_code == 422, r.text
    return {d["field"] for d in r.json()["detail"]}


def test_bad_input_is_422_naming_the_field(client: TestClient) -> None:
    assert _fields(client.post("/api/v1/capacity", json=_body(symbols=["AAA", "ZZZ"]))) == {
        "symbols[1]"
    }
    assert "symbols" in _fields(client.post("/api/v1/capacity", json=_body(symbols=["A", "A"])))
    assert "portfolio_id" in _fields(
        client.post("/api/v1/capacity", json=_body(portfolio_id="other"))
    )
    elsewhere = {"decision_id": "d-4", "portfolio_id": "other", "trades": []}
    assert _fields(client.post("/api/v1/capacity", json=_body(decision=elsewhere))) == {"decision"}
    unknown_trade = {
        "decision_id": "d-3",
        "portfolio_id": "p-1",
        "trades": [{"symbol": "ZZZ", "side": "BUY", "quantity": 1}],
    }
    assert _fields(client.post("/api/v1/capacity", json=_body(decision=unknown_trade))) == {
        "decision.trades[0].symbol"
    }
    assert _fields(client.post("/api/v1/capacity", json=_body(applicable_policies=["nope"]))) == {
        "applicable_policies[0]"
    }
    assert "symbols[0]" in _fields(client.post("/api/v1/capacity", json=_body(symbols=[""])))

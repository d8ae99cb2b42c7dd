"""The decision log through the API: every stored validation is replayable exactly.

A realistic sequence (a portfolio tree with an override, a policy edited, a condition on
the global policy's risk mode, the risk mode changed) is validated through the service;
replaying the whole log under the versions applied reproduces every logged answer. A
changed limit replayed flips exactly the decisions a hand computation says.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.http.app import create_app
from api.settings import Settings
from api.store import LogFilter
from models import PolicyDefinition
from tests.api.conftest import services_of
from tests.builders import policy, request

TREE = [
    {"portfolio_id": "acme", "name": "Acme"},
    {"portfolio_id": "equity", "name": "Equity Fund", "parent_id": "acme"},
    {"portfolio_id": "pf-1", "name": "Portfolio 1", "parent_id": "equity"},
    {"portfolio_id": "pf-2", "name": "Portfolio 2", "parent_id": "equity"},
]


def _cap(name: str, limit: float, scope: list[str], **fields: Any) -> dict[str, Any]:
    return policy(
        name, {"kind": "weight_bounds", "max": limit}, scope={"portfolios": scope}, **fields
    )


FIRM_CAP = _cap("firm-cap", 0.35, ["*"], overridable=True)
PF1_CAP = _cap("pf1-cap", 0.45, ["pf-1"], overrides="firm-cap")
DEFENSIVE_CAP = _cap("defensive-cap", 0.28, ["*"], when="risk_mode == 'DEFENSIVE'")


def _decision(portfolio_id: str, buy_aaa: float, decision_id: str) -> dict[str, Any]:
    """NAV 100,000 (AAA 200 at 100, cash 80,000): buying x AAA makes AAA (200 + x) / 1000."""
    req = request({"AAA": 200}, [("AAA", "BUY", buy_aaa)], cash=80_000.0)
    body: dict[str, Any] = req.model_dump(mode="json", exclude_none=True)
    body["decision"].update(portfolio_id=portfolio_id, decision_id=decision_id)
    body["portfolio_state"]["portfolio_id"] = portfolio_id
    return body


def _ok(r: Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def _validate(
    client: TestClient, portfolio_id: str, buy: float, decision_id: str
) -> dict[str, Any]:
    return _ok(client.post("/api/v1/validate", json=_decision(portfolio_id, buy, decision_id)))


def _adjusted(body: dict[str, Any]) -> Any:
    adjusted = body.get("adjusted_decision")
    if adjusted is None:
        return None
    return {k: adjusted[k] for k in ("method", "trades", "is_compliant", "distance", "solver")}


def _history(client: TestClient) -> dict[str, dict[str, Any]]:
    """Validations across two portfolios, a policy edit and a risk-mode change between them."""
    for node in TREE:
        _ok(client.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node), 201)
    for body in (FIRM_CAP, PF1_CAP, DEFENSIVE_CAP):
        _ok(client.post("/api/v1/policies", json=body), 201)
    answers = {
        "d1": _validate(client, "pf-1", 200, "d1"),  # 40% under the override's 45%
        "d2": _validate(client, "pf-2", 200, "d2"),  # 40% > 35%: adjusted
        "d3": _validate(client, "pf-2", 100, "d3"),  # 30%
    }
    _ok(
        client.put(
            "/api/v1/policies/firm-cap",
            json={**FIRM_CAP, "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.30}]}},
        )
    )
    answers["d4"] = _validate(client, "pf-2", 100, "d4")  # 30% at the new 30%
    answers["d5"] = _validate(client, "pf-2", 120, "d5")  # 32% > 30%
    answers["d6"] = _validate(client, "pf-1", 200, "d6")
    _ok(client.patch("/api/policy", json={"risk_mode": "DEFENSIVE"}))
    answers["d7"] = _validate(client, "pf-2", 90, "d7")  # 29% > 28% (defensive)
    answers["d8"] = _validate(client, "pf-1", 50, "d8")  # 25%
    return answers


def test_replaying_the_log_under_the_versions_applied_reproduces_every_answer(
    client: TestClient,
) -> None:
    answers = _history(client)
    assert not answers["d2"]["is_compliant"] and not answers["d5"]["is_compliant"]
    assert not answers["d7"]["is_compliant"] and answers["d8"]["is_compliant"]
    assert answers["d1"]["global_policy_version"] == 1
    assert answers["d8"]["global_policy_version"] == 2

    replay = _ok(client.post("/api/v1/replay", json={"include_responses": True}))
    assert replay["summary"]["replayed"] == 8
    assert replay["summary"]["changed"] == 0
    decisions = {d["decision_id"]: d for d in replay["decisions"]}
    assert list(decisions) == [f"d{k}" for k in range(1, 9)]
    for decision_id, logged in answers.items():
        replayed = decisions[decision_id]
        assert replayed["change"] == "unchanged", replayed
        again = replayed["response"]
        assert again["is_compliant"] == logged["is_compliant"]
        assert again["compliance_score"] == logged["compliance_score"]
        assert again["violations"] == logged["violations"]
        assert again["policies_checked"] == logged["policies_checked"]
        assert again["global_policy_version"] == logged["global_policy_version"]
        assert _adjusted(again) == _adjusted(logged)

    # The log names the versions applied: firm-cap v1 then v2, the override in pf-1.
    services = services_of(client)
    entries = {e.decision_id: e for e in services.store.decision_log.entries(LogFilter())}
    assert entries["d2"].policy_versions == {"firm-cap": 1}
    assert entries["d5"].policy_versions == {"firm-cap": 2}
    assert entries["d1"].policy_versions == {"pf1-cap": 1}
    assert entries["d7"].policy_versions == {"defensive-cap": 1, "firm-cap": 2}
    assert entries["d7"].global_policy_version == 2
    # One state and universe sent eight times: the universe is stored once.
    sizes = services.store.decision_log.sizes()
    assert sizes["entries"] == 8
    assert sizes["stored_bytes"] < sizes["json_bytes"]


def test_replaying_under_the_current_policies_shows_what_each_edit_changed(
    client: TestClient,
) -> None:
    _history(client)
    now = _ok(
        client.post(
            "/api/v1/replay",
            json={"candidate": {"base": "stored", "global_policy": "current"}},
        )
    )
    changes = {d["decision_id"]: d["change"] for d in now["decisions"]}
    # Under firm-cap 30% and the defensive 28% cap: d3 (30%) stays within 30% but breaches
    # 28%; d2 was blocked and stays blocked with other limits; d1 and d6 (40% in pf-1, whose
    # override does not lift the defensive cap) become blocked; d8 (25%) is unchanged.
    assert changes == {
        "d1": "newly_blocked",
        "d2": "violations_changed",
        "d3": "newly_blocked",
        "d4": "newly_blocked",
        "d5": "violations_changed",
        "d6": "newly_blocked",
        "d7": "unchanged",
        "d8": "unchanged",
    }


def test_a_changed_limit_flips_exactly_the_decisions_a_hand_computation_says(
    client: TestClient,
) -> None:
    """firm-cap 35% logged; AAA after the decision at 25, 30, 32, 34 and 40%.

    At 31%: 32% and 34% are newly blocked (each adjusted back to 31%: buy 110 instead of
    120, 110 instead of 140), 40% stays blocked with the limit now 31% (buy 110, not the
    logged 150), 25% and 30% are unchanged. At 45%: only 40% changes, newly allowed.
    """
    _ok(client.post("/api/v1/policies", json=FIRM_CAP), 201)
    buys = {"w25": 50, "w30": 100, "w32": 120, "w34": 140, "w40": 200}
    for decision_id, buy in buys.items():
        _validate(client, "pf-9", buy, decision_id)

    tighter = _ok(
        client.post(
            "/api/v1/replay",
            json={"candidate": {"policies": [_cap("firm-cap", 0.31, ["*"], overridable=True)]}},
        )
    )
    got = {d["decision_id"]: d for d in tighter["decisions"]}
    assert {k: d["change"] for k, d in got.items()} == {
        "w25": "unchanged",
        "w30": "unchanged",
        "w32": "newly_blocked",
        "w34": "newly_blocked",
        "w40": "violations_changed",
    }
    assert tighter["summary"]["changed"] == 3
    assert tighter["summary"]["by_change"]["newly_blocked"] == 2
    for key in ("w32", "w34", "w40"):
        added = got[key]["violations_added"]
        assert [(v["policy_name"], v["limit"]) for v in added] == [("firm-cap", 0.31)]
        assert added[0]["observed"] == pytest.approx((200 + buys[key]) / 1000)
        assert got[key]["replayed"]["adjusted"]
    assert got["w40"]["violations_removed"][0]["limit"] == 0.35
    assert got["w40"]["logged"]["distance"] is not None
    # the distance moved: the logged adjustment (to 35%) is shorter than the new one (31%)
    assert got["w40"]["replayed"]["distance"] > got["w40"]["logged"]["distance"]

    looser = _ok(
        client.post(
            "/api/v1/replay",
            json={
                "candidate": {"policies": [_cap("firm-cap", 0.45, ["*"], overridable=True)]},
                "include_responses": True,
                "decision_ids": ["w40", "w25"],
            },
        )
    )
    assert {d["decision_id"]: d["change"] for d in looser["decisions"]} == {
        "w25": "unchanged",
        "w40": "newly_allowed",
    }
    allowed = next(d for d in looser["decisions"] if d["decision_id"] == "w40")
    assert allowed["replayed"]["distance"] is None and allowed["response"]["is_compliant"]


def test_adjusted_quantities_under_a_tighter_limit_are_the_hand_computed_ones(
    client: TestClient,
) -> None:
    """At a 31% cap the decisions buying 120 and 140 are cut to 110 (AAA at 310 / 1000)."""
    _ok(client.post("/api/v1/policies", json=FIRM_CAP), 201)
    _validate(client, "pf-9", 120, "w32")
    _validate(client, "pf-9", 140, "w34")
    body = {
        "candidate": {"policies": [_cap("firm-cap", 0.31, ["*"], overridable=True)]},
        "include_responses": True,
    }
    for decision in _ok(client.post("/api/v1/replay", json=body))["decisions"]:
        trades = decision["response"]["adjusted_decision"]["trades"]
        assert [t["symbol"] for t in trades] == ["AAA"]
        assert trades[0]["quantity"] == pytest.approx(110, abs=1e-3)


def test_validations_stored_without_the_log_are_not_replayed(database_url: str) -> None:
    settings = Settings(database_url=database_url, events="none", decision_log=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        _ok(c.post("/api/v1/policies", json=FIRM_CAP), 201)
        _validate(c, "pf-9", 120, "w32")
        assert _ok(c.post("/api/v1/replay", json={}))["summary"]["replayed"] == 0


def test_replay_filters_and_bounds(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        events="none",
        replay_max_decisions=2,
        api_keys={"r": "reader", "v": "validator"},
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        v, r = {"X-API-Key": "v"}, {"X-API-Key": "r"}
        _ok(c.post("/api/v1/policies", json=FIRM_CAP, headers={"X-API-Key": "v"}), 403)
        services = services_of(c)
        services.store.policies.create(PolicyDefinition.model_validate(FIRM_CAP), actor="t")
        for k, (pf, buy) in enumerate([("pf-a", 50), ("pf-a", 200), ("pf-b", 200)]):
            _ok(c.post("/api/v1/validate", json=_decision(pf, buy, f"x{k}"), headers=v))
        too_many = _ok(c.post("/api/v1/replay", json={}, headers=r), 422)
        assert [d["field"] for d in too_many["detail"]] == ["filters"]
        assert "3 logged decisions match" in too_many["message"]
        one = _ok(c.post("/api/v1/replay", json={"portfolio_ids": ["pf-b"]}, headers=r))
        assert [d["decision_id"] for d in one["decisions"]] == ["x2"]
        ids = _ok(c.post("/api/v1/replay", json={"decision_ids": ["x0", "x9"]}, headers=r))
        assert [d["decision_id"] for d in ids["decisions"]] == ["x0"]
        none = _ok(c.post("/api/v1/replay", json={"since": "2999-01-01T00:00:00Z"}, headers=r))
        assert none["summary"]["replayed"] == 0
        assert c.post("/api/v1/replay", json={}).status_code == 401
        bad = [
            ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
            ({"since": "yesterday"}, "since"),
            ({"since": "2026-12-01T00:00:00"}, "since"),  # no timezone
            (
                {"decision_ids": ["x0"], "candidate": {"versions": {"firm-cap": 9}}},
                "candidate.versions",
            ),
            (
                {"decision_ids": ["x0"], "candidate": {"global_policy": 42}},
                "candidate.global_policy",
            ),
            (
                {"candidate": {"base": "applied", "as_of": "2026-12-01T00:00:00Z"}},
                "candidate.as_of",
            ),
            (
                {"candidate": {"policies": [FIRM_CAP, FIRM_CAP]}},
                "candidate.policies[1].policy_name",
            ),
            (
                {"candidate": {"policies": [{**FIRM_CAP, "policy_name": "global-policy.x"}]}},
                "candidate.policies[0].policy_name",
            ),
            (
                {"candidate": {"policies": [{**FIRM_CAP, "rules": 3}]}},
                "candidate.policies[0].rules",
            ),
            ({"limit": 3}, "limit"),
            ({"validation_ids": [2**70]}, "validation_ids[0]"),
            ({"validation_ids": ["1"]}, "validation_ids[0]"),
        ]
        for payload, field in bad:
            answer = _ok(c.post("/api/v1/replay", json=payload, headers=r), 422)
            fields = [d["field"] for d in answer["detail"]]
            assert any(f.startswith(field) for f in fields), (payload, answer)


def test_a_registered_universe_is_replayed_at_the_version_used(client: TestClient) -> None:
    """A newer version of the universe (AAA at 150) would move the weights; the replay reads
    the version the validation used, so the answer is the logged one."""
    _ok(client.post("/api/v1/policies", json=FIRM_CAP), 201)
    body = _decision("pf-9", 200, "by-ref")
    instruments = body["portfolio_state"].pop("instruments")
    body["portfolio_state"]["universe"] = {"id": "core"}
    universe = {"id": "core", "description": "five names", "instruments": instruments}
    _ok(client.put("/api/v1/universes/core", json=universe), 201)
    logged = _ok(client.post("/api/v1/validate", json=body))
    assert logged["reference_data"]["universe"] == {"id": "core", "version": 1}
    repriced = [{**i, "price": 150.0} if i["symbol"] == "AAA" else i for i in instruments]
    _ok(client.put("/api/v1/universes/core", json={**universe, "instruments": repriced}))
    replay = _ok(client.post("/api/v1/replay", json={"include_responses": True}))
    (decision,) = replay["decisions"]
    assert decision["change"] == "unchanged"
    assert decision["response"]["violations"] == logged["violations"]
    assert decision["response"]["reference_data"] == logged["reference_data"]


SOFT_CAP = _cap("soft-cap", 0.30, ["*"], enforcement_level="advisory")


def test_analytics_count_what_a_hand_count_says(client: TestClient) -> None:
    """Four decisions: pf-a at 25% and 40%, pf-b at 32% and 40% (firm-cap 35% strict,
    soft-cap 30% advisory). 40%: both violated, blocked; 32%: soft-cap only, compliant."""
    for body in (FIRM_CAP, SOFT_CAP):
        _ok(client.post("/api/v1/policies", json=body), 201)
    for pf, buy, decision_id in [("pf-a", 50, "a1"), ("pf-a", 200, "a2"), ("pf-b", 120, "b1"),
                                 ("pf-b", 200, "b2")]:  # fmt: skip
        _validate(client, pf, buy, decision_id)
    get = client.get
    assert _ok(get("/api/v1/analytics/violations", params={"by": "policy"})) == [
        {"policy_name": "soft-cap", "violations": 3, "decisions": 3, "portfolios": 2},
        {"policy_name": "firm-cap", "violations": 2, "decisions": 2, "portfolios": 2},
    ]
    assert _ok(get("/api/v1/analytics/violations", params={"by": "portfolio"})) == [
        {"portfolio_id": "pf-b", "validations": 2, "blocked": 1, "violations": 3, "decisions": 2},
        {"portfolio_id": "pf-a", "validations": 2, "blocked": 1, "violations": 2, "decisions": 1},
    ]
    (day,) = _ok(get("/api/v1/analytics/violations", params={"by": "day"}))
    assert day == {"day": day["day"], "validations": 4, "blocked": 2, "violations": 5,
                   "decisions": 3}  # fmt: skip
    assert _ok(get("/api/v1/analytics/blocking")) == [
        {"policy_name": "firm-cap", "blocked_decisions": 2, "portfolios": 2}
    ]
    future = {"by": "policy", "since": "2999-01-01T00:00:00Z"}
    assert _ok(get("/api/v1/analytics/violations", params=future)) == []
    for params, field in [
        ({"by": "week"}, "by"),
        ({"by": "day", "since": "2026-12-01T00:00:00"}, "since"),
        ({"by": "day", "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
    ]:
        answer = _ok(get("/api/v1/analytics/violations", params=params), 422)
        assert any(d["field"].endswith(field) for d in answer["detail"]), answer
    assert _ok(get("/api/v1/analytics/blocking", params={"limit": 0}), 422)

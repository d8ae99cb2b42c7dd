"""The violation lifecycle: open → acknowledged → resolved | cured, every transition recorded
and announced through the outbox; a persisting passive breach stays one violation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.pool import NullPool

from api.http.app import create_app
from api.settings import Settings
from api.store import Conflict, Store, ViolationFilter, ViolationStatus
from api.store.db import alembic_config
from api.store.tables import event_outbox, policy_violations
from engine import PolicyEngine
from models import EscalationRule, PolicyValidationRequest, PolicyValidationResponse
from tests.api.old_rows import old_validation
from tests.builders import policy, request
from tests.concurrency import together

CAP = policy("cap", {"kind": "weight_bounds", "max": 0.35})
HEAVY = {"AAA": 600.0, "BBB": 100.0, "CCC": 100.0}  # AAA above the cap before any trade
PASSIVE = [("BBB", "SELL", 10.0)]  # leaves AAA's breach as it was: passive
CURING = [("AAA", "SELL", 500.0)]  # brings AAA under the cap
ACTIVE = [("AAA", "BUY", 200.0)]  # from a compliant book: an active breach
LIGHT = {"AAA": 200.0, "BBB": 100.0, "CCC": 300.0, "DDD": 100.0}


def _response(
    decision_id: str, positions: dict[str, float], trades: list[tuple[str, str, float]]
) -> PolicyValidationResponse:
    body = request(positions, trades, cash=30_000.0, policies=[CAP], mode="validate").model_dump(
        mode="json"
    )
    body["decision"]["decision_id"] = decision_id
    return PolicyEngine().validate(PolicyValidationRequest.model_validate(body))


def _record(store: Store, response: PolicyValidationResponse, portfolio: str = "p-1") -> None:
    _, created = store.validations.record(
        response, portfolio_id=portfolio, request_hash=f"h-{response.decision_id}", actor="bot"
    )
    assert created


def _events(store: Store, event_type: str) -> list[dict[str, Any]]:
    t = event_outbox
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.payload).where(t.c.event_type == event_type))
        return [r.payload for r in rows]


def test_a_persisting_passive_breach_is_one_violation_until_a_validation_cures_it(
    store: Store,
) -> None:
    for n in (1, 2, 3):
        _record(store, _response(f"d-{n}", HEAVY, PASSIVE))
    items, total = store.violations.page(ViolationFilter(portfolio_id="p-1"))
    assert total == 1
    (v,) = items
    assert v.violation["breach"] == "passive" and v.violation["subject"] == "AAA"
    assert (v.status, v.occurrences, v.decision_id, v.last_decision_id) == (
        ViolationStatus.OPEN,
        3,
        "d-1",
        "d-3",
    )
    assert v.last_seen_at >= v.created_at

    _record(store, _response("d-4", HEAVY, CURING))
    cured = store.violations.get(v.id)
    assert cured.status is ViolationStatus.CURED and cured.resolved
    assert cured.resolved_by == "system"
    history = store.violations.history(v.id)
    assert [(h.action, h.from_status, h.to_status) for h in history] == [
        ("opened", None, "open"),
        ("cured", "open", "cured"),
    ]
    assert history[0].decision_id == "d-1" and history[1].decision_id == "d-4"
    (event,) = _events(store, "violation_status_changed")
    assert event["violation"]["id"] == v.id and event["violation"]["status"] == "cured"
    assert event["transition"]["action"] == "cured"
    assert event["transition"]["decision_id"] == "d-4"

    # The breach back after the cure: a new violation, not the cured one reopened.
    _record(store, _response("d-5", HEAVY, PASSIVE))
    items, total = store.violations.page(ViolationFilter(status=("open",)))
    assert total == 1 and items[0].id != v.id and items[0].occurrences == 1


def test_a_persisting_passive_breach_without_a_subject_is_counted_on_its_violation(
    store: Store,
) -> None:
    # Cash under the floor before the trade; the sale adds cash but not enough: passive,
    # keyed without a subject, beside the cap's passive breach keyed by its name.
    floor = policy("floor", {"kind": "cash", "min": 0.5}, policy_type="INVESTMENT_MANDATE")
    for n in (1, 2, 3):
        _record(store, _validated(f"d-{n}", HEAVY, PASSIVE, [CAP, floor]))
    items, total = store.violations.page(ViolationFilter(portfolio_id="p-1"))
    assert total == 2
    by_policy = {v.violation["policy_name"]: v for v in items}
    assert by_policy["floor"].violation["subject"] is None
    for v in items:
        assert v.violation["breach"] == "passive"
        assert (v.occurrences, v.decision_id, v.last_decision_id) == (3, "d-1", "d-3")


def test_active_breaches_are_one_violation_per_decision(store: Store) -> None:
    _record(store, _response("d-1", LIGHT, ACTIVE))
    _record(store, _response("d-2", LIGHT, ACTIVE))
    items, total = store.violations.page(ViolationFilter(portfolio_id="p-1"))
    assert total == 2 and {v.decision_id for v in items} == {"d-1", "d-2"}
    assert all(v.violation["breach"] == "active" for v in items)


def _validated(
    decision_id: str,
    positions: dict[str, float],
    trades: list[tuple[str, str, float]],
    policies: list[dict[str, Any]],
) -> PolicyValidationResponse:
    body = request(positions, trades, cash=30_000.0, policies=policies, mode="validate")
    body = body.model_dump(mode="json")
    body["decision"]["decision_id"] = decision_id
    return PolicyEngine().validate(PolicyValidationRequest.model_validate(body))


def test_a_validation_cures_the_keys_it_found_compliant_of_the_policies_it_checked(
    store: Store,
) -> None:
    # Two policies, each breached by each decision: per name (subject AAA) and on the cash
    # floor. Active breaches stay live, one per decision, while their key keeps breaching;
    # a validation cures only the keys it found compliant, and only of the policies it
    # checked, however many live violations the portfolio holds.
    cash_floor = policy("floor", {"kind": "cash", "min": 0.5}, policy_type="INVESTMENT_MANDATE")
    both = [CAP, cash_floor]
    for n in range(1, 5):
        _record(store, _validated(f"d-{n}", LIGHT, ACTIVE, both))
    live, total = store.violations.page(ViolationFilter(status=("open",)))
    assert total == 8 and {v.violation["policy_name"] for v in live} == {"cap", "floor"}
    # The cap alone, found compliant: its four violations are cured, the floor's are not.
    _record(store, _validated("d-5", LIGHT, [("BBB", "BUY", 1.0)], [CAP]))
    live, total = store.violations.page(ViolationFilter(status=("open",)))
    assert total == 4 and {v.violation["policy_name"] for v in live} == {"floor"}
    # Both checked, the floor found breached again (its key has no subject): it stays live,
    # with the decision's own violation beside.
    _record(store, _validated("d-5b", LIGHT, [("BBB", "BUY", 1.0)], both))
    live, total = store.violations.page(ViolationFilter(status=("open",)))
    assert total == 5 and {v.violation["policy_name"] for v in live} == {"floor"}
    cured, _ = store.violations.page(ViolationFilter(status=("cured",)))
    assert len(cured) == 4 and {v.violation["subject"] for v in cured} == {"AAA"}
    assert all(v.resolved_by == "system" for v in cured)

    # The floor found compliant (a decision that leaves more cash): cured, subject and all.
    _record(store, _validated("d-6", LIGHT, [("CCC", "SELL", 290.0)], [cash_floor]))
    _, total = store.violations.page(ViolationFilter(status=("open",)))
    assert total == 0


def test_a_validation_cures_only_its_own_portfolio(store: Store) -> None:
    _record(store, _response("d-1", HEAVY, PASSIVE), portfolio="p-1")
    _record(store, _response("d-2", HEAVY, CURING), portfolio="p-2")
    (v,), _ = store.violations.page(ViolationFilter(portfolio_id="p-1"))
    assert v.status is ViolationStatus.OPEN


def test_transitions_follow_the_lifecycle_and_each_is_announced(store: Store) -> None:
    _record(store, _response("d-1", LIGHT, ACTIVE))
    (v,), _ = store.violations.page(ViolationFilter())
    acked = store.violations.acknowledge(v.id, actor="erin", reason="looking")
    assert acked.status is ViolationStatus.ACKNOWLEDGED and acked.acknowledged_by == "erin"
    with pytest.raises(Conflict, match="acknowledged; it cannot be acknowledged"):
        store.violations.acknowledge(v.id, actor="erin", reason=None)
    with pytest.raises(Conflict):
        store.violations.reopen(v.id, actor="erin", reason=None)
    done = store.violations.resolve(v.id, actor="erin", reason="limit raised")
    assert (done.status, done.resolution_note, done.resolved) == ("resolved", "limit raised", True)
    with pytest.raises(Conflict):
        store.violations.resolve(v.id, actor="erin", reason="again")
    again = store.violations.reopen(v.id, actor="bob", reason="not raised after all")
    assert again.status is ViolationStatus.OPEN and again.resolved_at is None

    two, one = (EscalationRule(name=f"r{n}", level=n) for n in (2, 1))
    raised = store.escalations.escalate(
        v.id, two, actor="rules", reason="r1", now=datetime.now(UTC)
    )
    assert raised is not None and raised.escalation_level == 2
    assert (
        store.escalations.escalate(v.id, one, actor="rules", reason="r0", now=datetime.now(UTC))
        is None
    )

    history = store.violations.history(v.id)
    assert [(h.action, h.actor, h.reason) for h in history] == [
        ("opened", "bot", None),
        ("acknowledged", "erin", "looking"),
        ("resolved", "erin", "limit raised"),
        ("reopened", "bob", "not raised after all"),
        ("escalated", "rules", "r1"),
    ]
    assert history[-1].escalation_level == 2 and history[-1].to_status == "open"
    announced = [e["transition"]["action"] for e in _events(store, "violation_status_changed")]
    assert announced == ["acknowledged", "resolved", "reopened", "escalated"]


def test_bulk_changes_what_it_may_and_names_what_it_skipped(store: Store) -> None:
    _record(store, _response("d-1", LIGHT, ACTIVE))
    _record(store, _response("d-2", LIGHT, ACTIVE))
    items, _ = store.violations.page(ViolationFilter())
    first, second = sorted(v.id for v in items)
    store.violations.resolve(first, actor="erin", reason="done")
    outcome = store.violations.bulk([first, second, 999], "acknowledged", actor="bob", reason=None)
    assert [v.id for v in outcome.changed] == [second]
    assert set(outcome.skipped) == {first, 999}
    assert "resolved" in outcome.skipped[first] and "no violation" in outcome.skipped[999]


# --- over HTTP ------------------------------------------------------------------------------

KEYS = {"a-key-0001": "admin", "r-key-0002": "reader", "v-key-0003": "validator"}
ADMIN, READER = {"X-API-Key": "a-key-0001"}, {"X-API-Key": "r-key-0002"}


@pytest.fixture
def secured(database_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=database_url, events="none", api_keys=KEYS))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _open_violation(client: TestClient) -> int:
    services: Any = client.app
    _record(services.state.services.store, _response("d-1", LIGHT, ACTIVE))
    items = client.get("/api/v1/violations", headers=READER).json()["items"]
    violation_id: int = items[0]["id"]
    return violation_id


def test_acknowledge_and_resolve_over_http(secured: TestClient) -> None:
    vid = _open_violation(secured)
    one = secured.get(f"/api/v1/violations/{vid}", headers=READER).json()
    assert one["status"] == "open" and [h["action"] for h in one["history"]] == ["opened"]

    r = secured.post(f"/api/v1/violations/{vid}/acknowledge", json={}, headers=READER)
    assert r.status_code == 403
    r = secured.post(
        f"/api/v1/violations/{vid}/acknowledge",
        json={"reason": "on it"},
        headers={**ADMIN, "X-Actor": "erin"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged" and r.json()["acknowledged_by"].startswith("erin")
    r = secured.post(f"/api/v1/violations/{vid}/acknowledge", json={}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "conflict"

    r = secured.post(f"/api/v1/violations/{vid}/resolve", json={}, headers=ADMIN)
    assert r.status_code == 422  # a reason is required
    r = secured.post(f"/api/v1/violations/{vid}/resolve", json={"reason": "ok"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert [h["action"] for h in r.json()["history"]] == ["opened", "acknowledged", "resolved"]
    listed = secured.get("/api/v1/violations", params={"status": "resolved"}, headers=READER)
    assert [i["id"] for i in listed.json()["items"]] == [vid]
    assert secured.get("/api/v1/violations/999999", headers=READER).status_code == 404

    r = secured.post(f"/api/v1/violations/{vid}/reopen", json={"reason": "back"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "open", r.text
    assert r.json()["history"][-1]["action"] == "reopened"
    assert r.json()["history"][-1]["reason"] == "back"
    r = secured.post(f"/api/v1/violations/{vid}/reopen", json={}, headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = secured.post("/api/v1/violations/999999/reopen", json={}, headers=ADMIN)
    assert r.status_code == 404


def test_bulk_over_http(secured: TestClient) -> None:
    vid = _open_violation(secured)
    body = {"ids": [vid, 424242], "action": "resolve"}
    r = secured.post("/api/v1/violations/bulk", json=body, headers=ADMIN)
    assert r.status_code == 422  # resolving needs a reason
    r = secured.post("/api/v1/violations/bulk", json={**body, "reason": "x"}, headers=READER)
    assert r.status_code == 403
    r = secured.post("/api/v1/violations/bulk", json={**body, "reason": "x"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert [v["id"] for v in r.json()["changed"]] == [vid]
    assert [s["id"] for s in r.json()["skipped"]] == [424242]


def test_rows_stored_before_the_lifecycle_read_as_open_or_resolved(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        validation_id = old_validation(conn)
        for resolved in (False, True):
            conn.execute(
                policy_violations.insert().values(
                    validation_id=validation_id,
                    decision_id="dec-old",
                    portfolio_id="pf-1",
                    policy_name="cap",
                    policy_type="position_limit",
                    violation_type="weight_bounds.max",
                    severity="HIGH",
                    breach="active",
                    enforcement_level="strict",
                    subject="AAA",
                    observed=0.4,
                    limit_value=0.35,
                    pre_trade=0.3,
                    description="over",
                    created_at=now,
                    resolved=resolved,
                )
            )
    engine.dispose()
    store = Store.open(database_url)
    try:
        items, _ = store.violations.page(ViolationFilter())
        assert sorted((v.status.value, v.occurrences, v.last_decision_id) for v in items) == [
            ("open", 1, "dec-old"),
            ("resolved", 1, "dec-old"),
        ]
    finally:
        store.engine.dispose()


def test_concurrent_validations_of_one_persisting_passive_breach_open_one_violation(
    store: Store,
) -> None:
    # Eight workers store the same passive breach at one moment: with no live violation to
    # lock yet, each would see none and open its own without the per-portfolio lock.
    responses = [_response(f"d-{k}", HEAVY, PASSIVE) for k in range(8)]
    together(8, lambda k: _record(store, responses[k]))
    items, total = store.violations.page(ViolationFilter(portfolio_id="p-1"))
    assert total == 1
    assert items[0].occurrences == 8

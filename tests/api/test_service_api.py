"""The HTTP service through the real app (TestClient), on SQLite and on PostgreSQL.

Every test that takes `client` or `database_url` runs once per database; the PostgreSQL run
is skipped, with the reason, when `PES_TEST_POSTGRES_URL` is unset or unreachable.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from httpx import Response
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import api.store.validations
from api.http.app import create_app
from api.http.routes.validate import legacy_request_hash, request_hash
from api.settings import Settings
from api.store import Store
from api.store.tables import event_outbox, policy_violations, portfolio_policies, validations
from models import PolicyValidationRequest
from tests.api.conftest import REPO, core_policies, example_request, psycopg_url, services_of
from tests.services import postgres_url

RequestLoader = Callable[[str], dict[str, Any]]
TABLES = (
    "alembic_version",
    "event_outbox",
    "policy_versions",
    "policy_violations",
    "portfolio_policies",
    "validations",
)

# --- helpers -------------------------------------------------------------------------------


def _create_policies(
    client: TestClient, policies: list[dict[str, Any]], actor: str = "alice"
) -> None:
    for policy in policies:
        r = client.post("/api/v1/policies", json=policy, headers={"X-Actor": actor})
        assert r.status_code == 201, r.text


def _validate(client: TestClient, body: dict[str, Any]) -> Response:
    r: Response = client.post("/api/v1/validate", json=body)
    return r


def _rows(client: TestClient, table: sa.Table) -> list[sa.RowMapping]:
    with services_of(client).store.engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.id)).mappings())


def _counts(client: TestClient) -> tuple[int, int, int]:
    """(validations, violations, outbox events) stored."""
    return (
        len(_rows(client, validations)),
        len(_rows(client, policy_violations)),
        len(_rows(client, event_outbox)),
    )


def _metrics(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


def _sample(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def _assert_error(r: Response, status: int, error: str | None = None) -> dict[str, Any]:
    """`r` is a JSON error of the service's one shape: error, message, detail."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and {"error", "message", "detail"} <= body.keys(), body
    if error is not None:
        assert body["error"] == error, body
    return body


def _policy(client: TestClient, name: str) -> dict[str, Any]:
    r = client.get(f"/api/v1/policies/{name}")
    assert r.status_code == 200
    return _definition(r.json())


def _definition(stored: dict[str, Any]) -> dict[str, Any]:
    """A policy answer less the fields the store adds: the definition itself."""
    added = {"version", "updated_at", "updated_by"}
    return {k: v for k, v in stored.items() if k not in added}


def _fields(body: dict[str, Any]) -> list[str]:
    return [d["field"] for d in body["detail"]]


# --- health ----------------------------------------------------------------------------------


def test_healthz_and_readyz(client: TestClient, core: list[dict[str, Any]]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503  # no policy yet: every validation would be refused
    assert r.json()["checks"]["database"] == "ok"
    assert r.json()["checks"]["policies"].startswith("no enabled strict or advisory policy")
    _create_policies(client, core)
    r = client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body.pop("global_policy")["version"] == 1  # tests/api/test_readiness.py
    assert body == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "policies": f"ok ({len(core)} loaded)",
            "global_policy": "ok (version 1, NORMAL)",
            "events": "none",
        },
    }


def test_readyz_and_validate_503_when_the_database_is_gone(
    client: TestClient,
    database_url: str,
    tmp_path: Path,
    core: list[dict[str, Any]],
    load_request: RequestLoader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _create_policies(client, core)
    services = services_of(client)
    if database_url.startswith("sqlite"):
        dead = sa.create_engine(f"sqlite:///{tmp_path / 'deleted-directory' / 'pes.db'}")
    else:
        dead = sa.create_engine(
            "postgresql+psycopg://postgres@127.0.0.1:1/gone", connect_args={"connect_timeout": 2}
        )
    with monkeypatch.context() as m:
        for owner in (
            services.store,
            services.store.policies,
            services.store.validations,
            services.store.outbox,
        ):
            m.setattr(owner, "engine", dead)
        r = client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not ready"
        assert body["checks"]["database"].startswith("error")
        # Validation fails closed: never an answer (and never "compliant") without the store.
        _assert_error(_validate(client, load_request("small-rebalance")), 503, "unavailable")
        assert "pes_outbox_pending" in client.get("/metrics").text  # a scrape still works
    dead.dispose()
    assert client.get("/readyz").status_code == 200


# --- validate: storage, idempotency, dry runs --------------------------------------------


@pytest.mark.parametrize(
    ("example", "compliant"), [("aapl-overweight", False), ("small-rebalance", True)]
)
def test_validate_stores_validation_violations_and_exactly_one_event(
    client: TestClient,
    core: list[dict[str, Any]],
    load_request: RequestLoader,
    example: str,
    compliant: bool,
) -> None:
    _create_policies(client, core)
    body = load_request(example)
    decision_id = body["decision"]["decision_id"]
    r = _validate(client, body)
    assert r.status_code == 200, r.text
    assert "idempotent-replayed" not in r.headers
    answer = r.json()
    assert answer["decision_id"] == decision_id
    assert answer["is_compliant"] is compliant
    assert answer["violations"], "both examples breach something (active or passive)"
    assert sorted(answer["policies_checked"]) == sorted(p["policy_name"] for p in core)
    if not compliant:
        assert answer["adjusted_decision"] is not None

    (row,) = _rows(client, validations)
    assert row["decision_id"] == decision_id
    assert row["portfolio_id"] == "global-equity"
    assert row["is_compliant"] is compliant
    assert row["compliance_score"] == pytest.approx(answer["compliance_score"])
    assert row["actor"] == "local"

    stored = _rows(client, policy_violations)
    assert sorted((v["policy_name"], v["subject"], v["severity"], v["breach"]) for v in stored) == (
        sorted(
            (v["policy_name"], v["subject"], v["severity"], v["breach"])
            for v in answer["violations"]
        )
    )
    assert {v["validation_id"] for v in stored} == {row["id"]}
    assert not any(v["resolved"] for v in stored)

    (event,) = _rows(client, event_outbox)
    assert event["event_type"] == "policy_validation_completed"
    assert event["published_at"] is None  # events="none": nothing relays it
    payload = event["payload"]
    assert payload["event_id"] == event["event_id"]
    assert payload["event_type"] == "policy_validation_completed"
    assert payload["policy_validation"] == {
        "decision_id": decision_id,
        "is_compliant": compliant,
        "compliance_score": pytest.approx(answer["compliance_score"]),
        "violations": sorted({v["policy_name"] for v in answer["violations"]}),
        "policies_checked": answer["policies_checked"],
    }

    got = client.get(f"/api/v1/validations/{decision_id}")
    assert got.status_code == 200
    assert got.json() == answer


def test_replay_returns_the_stored_answer(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _create_policies(client, core)
    body = load_request("aapl-overweight")
    first = _validate(client, body)
    assert first.status_code == 200

    again = _validate(client, body)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()

    # Same content, different spelling: key order and 2000 vs 2000.0 do not matter.
    respelled = json.loads(json.dumps(body, sort_keys=True))
    respelled["decision"]["trades"][0]["quantity"] = 2000.0
    text = json.dumps(dict(reversed(list(respelled.items()))))
    third = client.post(
        "/api/v1/validate", content=text, headers={"content-type": "application/json"}
    )
    assert third.status_code == 200
    assert third.headers["idempotent-replayed"] == "true"
    assert third.json() == first.json()

    assert _counts(client) == (1, len(first.json()["violations"]), 1)
    assert _sample(_metrics(client), "pes_validations_total", outcome="replayed") == 2


def test_same_decision_id_with_a_different_body_is_409(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _create_policies(client, core)
    body = load_request("aapl-overweight")
    first = _validate(client, body)
    assert first.status_code == 200
    counts = _counts(client)

    changed = copy.deepcopy(body)
    changed["decision"]["trades"][0]["quantity"] = 1999
    error = _assert_error(_validate(client, changed), 409, "conflict")
    assert "dec-0001" in error["message"]
    changed_mode = copy.deepcopy(body)
    changed_mode["mode"] = "validate"
    _assert_error(_validate(client, changed_mode), 409, "conflict")

    assert _counts(client) == counts
    assert client.get("/api/v1/validations/dec-0001").json() == first.json()


def test_a_hash_stored_in_the_first_form_still_replays(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _create_policies(client, core)
    body = load_request("aapl-overweight")
    first = _validate(client, body)
    assert first.status_code == 200
    request = PolicyValidationRequest.model_validate(body)
    digest = request_hash(request)
    assert len(digest) == 62
    (row,) = _rows(client, validations)
    assert row["request_hash"] == digest
    legacy = legacy_request_hash(request)
    assert len(legacy) == 64
    with services_of(client).store.engine.begin() as conn:
        conn.execute(sa.update(validations).values(request_hash=legacy))

    again = _validate(client, body)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    changed = copy.deepcopy(body)
    changed["decision"]["trades"][0]["quantity"] = 1999
    _assert_error(_validate(client, changed), 409, "conflict")


def test_inline_policies_are_a_dry_run_not_stored_and_no_event(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    body = load_request("aapl-overweight")
    body["policies"] = core  # nothing is stored: the inline set is used instead
    r = _validate(client, body)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-pes-dry-run") == "true"
    answer = r.json()
    assert answer["is_compliant"] is False
    assert sorted(answer["policies_checked"]) == sorted(p["policy_name"] for p in core)

    assert _counts(client) == (0, 0, 0)
    _assert_error(client.get("/api/v1/validations/dec-0001"), 404, "not_found")
    assert client.get("/api/v1/violations").json()["total"] == 0
    # A dry run does not use up the decision id: the real validation still goes through.
    _create_policies(client, core)
    real = _validate(client, load_request("aapl-overweight"))
    assert real.status_code == 200
    assert "idempotent-replayed" not in real.headers
    assert _counts(client)[0] == 1


def test_unknown_validation_is_404(client: TestClient) -> None:
    error = _assert_error(client.get("/api/v1/validations/never-seen"), 404, "not_found")
    assert "never-seen" in error["message"]


# --- policies ------------------------------------------------------------------------------


def test_policy_crud_and_versions_with_actor_and_diff(
    client: TestClient, core: list[dict[str, Any]]
) -> None:
    cap = next(p for p in core if p["policy_name"] == "single-name-cap")
    r = client.post("/api/v1/policies", json=cap, headers={"X-Actor": "alice"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["version"] == 1
    assert created["updated_by"] == "alice"
    assert created["rules"]["constraints"][0]["max"] == 0.10

    got = client.get("/api/v1/policies/single-name-cap")
    assert got.status_code == 200
    assert _definition(got.json()) == _definition(created)
    assert got.json()["version"] == 1

    _assert_error(client.post("/api/v1/policies", json=cap), 409, "conflict")

    wider = copy.deepcopy(cap)
    wider["rules"]["constraints"][0]["max"] = 0.12
    r = client.put("/api/v1/policies/single-name-cap", json=wider, headers={"X-Actor": "bob"})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["updated_by"]) == (2, "bob")

    r = client.patch(
        "/api/v1/policies/single-name-cap",
        json={"enforcement_level": "advisory"},
        headers={"X-Actor": "carol"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3
    assert r.json()["enforcement_level"] == "advisory"
    assert r.json()["rules"]["constraints"][0]["max"] == 0.12

    renamed = dict(wider, policy_name="other-name")
    _assert_error(client.put("/api/v1/policies/single-name-cap", json=renamed), 409, "conflict")
    _assert_error(client.put("/api/v1/policies/nope", json=dict(wider, policy_name="nope")), 404)

    r = client.get("/api/v1/policies/single-name-cap/versions")
    assert r.status_code == 200
    versions = r.json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["change"] for v in versions] == ["create", "replace", "patch"]
    assert [v["actor"] for v in versions] == ["alice", "bob", "carol"]
    assert versions[0]["diff"] == [
        {"path": "(root)", "old": None, "new": _definition(created)},
    ]
    assert versions[1]["diff"] == [{"path": "rules.constraints[0].max", "old": 0.1, "new": 0.12}]
    assert versions[2]["diff"] == [
        {"path": "enforcement_level", "old": "strict", "new": "advisory"}
    ]
    assert versions[2]["definition"] == _policy(client, "single-name-cap")
    times = [datetime.fromisoformat(v["changed_at"]) for v in versions]
    assert times == sorted(times)
    _assert_error(client.get("/api/v1/policies/nope/versions"), 404, "not_found")


PATCH_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "bad-number",
        {"rules": {"constraints": [{"kind": "weight_bounds", "max": "lots"}]}},
        "rules.constraints[0]",
        "max",
    ),
    ("bad-enum", {"policy_type": "NOT_A_TYPE"}, "policy_type", "policy_type"),
    ("removed-rules", {"rules": None}, "rules", "rules"),
    ("empty-scope", {"scope": {"portfolios": []}}, "scope.portfolios", "portfolios"),
    ("unknown-field", {"owner": "me"}, "owner", "owner"),
]


def test_patch_giving_an_invalid_policy_is_422_naming_the_field(
    client: TestClient, core: list[dict[str, Any]]
) -> None:
    _create_policies(client, core[:1])
    name = core[0]["policy_name"]
    before = _policy(client, name)
    for case, patch, prefix, suffix in PATCH_CASES:
        body = _assert_error(client.patch(f"/api/v1/policies/{name}", json=patch), 422)
        fields = _fields(body)
        assert any(f.startswith(prefix) and f.endswith(suffix) for f in fields), (case, fields)
    assert _policy(client, name) == before
    assert len(client.get(f"/api/v1/policies/{name}/versions").json()) == 1


def test_delete_disables_and_keeps_history(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _create_policies(client, core)
    r = client.delete("/api/v1/policies/single-name-cap", headers={"X-Actor": "dave"})
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False
    assert r.json()["version"] == 2

    got = client.get("/api/v1/policies/single-name-cap")
    assert got.status_code == 200  # still stored
    assert got.json()["enabled"] is False
    versions = client.get("/api/v1/policies/single-name-cap/versions").json()
    assert [(v["version"], v["change"], v["actor"]) for v in versions] == [
        (1, "create", "alice"),
        (2, "disable", "dave"),
    ]
    assert versions[1]["diff"] == [{"path": "enabled", "old": True, "new": False}]

    # A disabled policy is no longer enforced.
    answer = _validate(client, load_request("aapl-overweight")).json()
    assert "single-name-cap" not in answer["policies_checked"]
    assert all(v["policy_name"] != "single-name-cap" for v in answer["violations"])
    _assert_error(client.delete("/api/v1/policies/nope"), 404, "not_found")

    # Re-enabling is a patch, another audited version.
    r = client.patch("/api/v1/policies/single-name-cap", json={"enabled": True})
    assert r.status_code == 200
    assert r.json()["version"] == 3
    assert r.json()["enabled"] is True


def test_list_filters(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    emea = {
        "policy_name": "emea-only",
        "policy_type": "REGULATORY",
        "scope": {"portfolios": ["emea-fund"]},
        "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.05}]},
    }
    _create_policies(client, [*core, emea])
    assert client.delete("/api/v1/policies/beta-band").status_code == 200

    def names(**params: str) -> list[str]:
        r = client.get("/api/v1/policies", params=params)
        assert r.status_code == 200, r.text
        return [p["policy_name"] for p in r.json()]

    everything = sorted([p["policy_name"] for p in core] + ["emea-only"])
    assert names() == everything
    assert names(policy_type="RISK_LIMIT") == ["beta-band"]
    assert names(policy_type="REGULATORY") == ["emea-only"]
    assert names(enabled="false") == ["beta-band"]
    assert names(enabled="true") == [n for n in everything if n != "beta-band"]
    effective = ["cash-floor", "sector-caps", "single-name-cap"]
    assert names(portfolio_id="global-equity") == effective
    assert names(portfolio_id="emea-fund") == sorted([*effective, "emea-only"])
    assert names(portfolio_id="global-equity", policy_type="REGULATORY") == []
    assert names(portfolio_id="global-equity", policy_type="POSITION_LIMIT") == ["single-name-cap"]

    # The validation checks exactly the effective set of its portfolio.
    answer = _validate(client, load_request("small-rebalance")).json()
    assert sorted(answer["policies_checked"]) == effective


# --- violations ----------------------------------------------------------------------------


def _two_validations(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> list[dict[str, Any]]:
    """Store both example validations; return their violations (as answered)."""
    _create_policies(client, core)
    out: list[dict[str, Any]] = []
    for example in ("aapl-overweight", "small-rebalance"):
        r = _validate(client, load_request(example))
        assert r.status_code == 200, r.text
        out += r.json()["violations"]
    return out


def test_violations_filters_and_paging(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    answered = _two_validations(client, core, load_request)
    after = datetime.now(UTC) + timedelta(minutes=1)
    total = len(answered)

    def page(**params: Any) -> dict[str, Any]:
        r = client.get("/api/v1/violations", params=params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    everything = page()
    assert everything["total"] == total == len(everything["items"])
    assert (everything["limit"], everything["offset"]) == (100, 0)
    ids = [v["id"] for v in everything["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert everything["items"][0]["decision_id"] == "dec-0002"
    item = everything["items"][0]
    assert set(item["violation"]) >= {"policy_name", "severity", "subject", "observed", "limit"}
    assert item["resolved"] is False and item["resolved_at"] is None

    assert page(portfolio_id="global-equity")["total"] == total
    assert page(portfolio_id="another-portfolio")["total"] == 0
    for name in {v["policy_name"] for v in answered}:
        got = page(policy_name=name)
        assert got["total"] == sum(v["policy_name"] == name for v in answered)
        assert {i["violation"]["policy_name"] for i in got["items"]} == {name}
    for severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        got = page(severity=severity)
        assert got["total"] == sum(v["severity"] == severity for v in answered), severity
    # The second validation found the first one's other breaches compliant: it cured them.
    second = sum(1 for i in everything["items"] if i["decision_id"] == "dec-0002")
    assert page(resolved="false")["total"] == second == page(status="open")["total"]
    assert page(resolved="true")["total"] == total - second == page(status="cured")["total"]
    assert page(status=["open", "cured"])["total"] == total

    # Paging: pages are disjoint, cover everything, and keep the total.
    seen: list[int] = []
    for offset in range(0, total, 2):
        got = page(limit=2, offset=offset)
        assert got["total"] == total
        assert (got["limit"], got["offset"]) == (2, offset)
        seen += [i["id"] for i in got["items"]]
    assert seen == ids
    assert page(offset=total)["items"] == []

    # Time window (UTC).
    assert page(since=before.isoformat())["total"] == total
    assert page(since=after.isoformat())["total"] == 0
    assert page(until=before.isoformat())["total"] == 0
    assert page(until=after.isoformat())["total"] == total
    assert page(since=before.isoformat(), until=after.isoformat(), policy_name="sector-caps")[
        "total"
    ] == sum(v["policy_name"] == "sector-caps" for v in answered)


def test_violations_time_window_honours_utc_offsets(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    answered = _two_validations(client, core, load_request)
    after = datetime.now(UTC) + timedelta(minutes=1)
    east, west = timezone(timedelta(hours=5)), timezone(timedelta(hours=-5))

    def total(**params: str) -> int:
        r = client.get("/api/v1/violations", params=params)
        assert r.status_code == 200, r.text
        count: int = r.json()["total"]
        return count

    # The same instants, written with other offsets, select the same rows.
    assert total(since=before.astimezone(east).isoformat()) == len(answered)
    assert total(until=after.astimezone(west).isoformat()) == len(answered)
    assert total(since=after.astimezone(west).isoformat()) == 0
    assert total(until=before.astimezone(east).isoformat()) == 0


def test_timestamps_in_responses_carry_their_utc_offset(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _two_validations(client, core, load_request)
    item = client.get("/api/v1/violations").json()["items"][0]
    resolved = client.patch(f"/api/v1/violations/{item['id']}", json={"note": "ok"}).json()
    version = client.get("/api/v1/policies/single-name-cap/versions").json()[0]
    stamps = {
        "violation.created_at": item["created_at"],
        "violation.resolved_at": resolved["resolved_at"],
        "version.changed_at": version["changed_at"],
        "policy.updated_at": client.get("/api/v1/policies/cash-floor").json()["updated_at"],
    }
    naive = {k: v for k, v in stamps.items() if datetime.fromisoformat(v).tzinfo is None}
    assert not naive, f"timestamps without a UTC offset: {naive}"


def test_resolve_a_violation_with_note_and_actor(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _two_validations(client, core, load_request)
    target = client.get("/api/v1/violations", params={"status": "open"}).json()
    violation_id = target["items"][0]["id"]

    r = client.patch(
        f"/api/v1/violations/{violation_id}",
        json={"note": "approved by the CIO: temporary sector tilt"},
        headers={"X-Actor": "erin"},
    )
    assert r.status_code == 200, r.text
    resolved = r.json()
    assert resolved["id"] == violation_id
    assert resolved["resolved"] is True
    assert resolved["resolution_note"] == "approved by the CIO: temporary sector tilt"
    assert resolved["resolved_by"] == "erin"
    assert resolved["resolved_at"] is not None
    assert resolved["violation"] == target["items"][0]["violation"]

    done = client.get("/api/v1/violations", params={"status": "resolved"}).json()
    assert [i["id"] for i in done["items"]] == [violation_id]
    assert done["items"][0]["resolved_by"] == "erin"
    open_ = client.get("/api/v1/violations", params={"resolved": "false"}).json()
    assert violation_id not in [i["id"] for i in open_["items"]]

    r = client.patch(f"/api/v1/violations/{violation_id}", json={"resolved": False})
    assert r.status_code == 200
    assert r.json()["resolved"] is False
    assert r.json()["resolved_at"] is None
    assert client.get("/api/v1/violations", params={"status": "resolved"}).json()["total"] == 0

    _assert_error(client.patch("/api/v1/violations/999999", json={"note": "x"}), 404, "not_found")
    body = _assert_error(
        client.patch(f"/api/v1/violations/{violation_id}", json={"resolve": True}), 422
    )
    assert "resolve" in _fields(body)


# --- bad input -----------------------------------------------------------------------------


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        node: Any = body
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


INLINE_UNKNOWN_KIND = [
    {
        "policy_name": "odd",
        "policy_type": "RISK_LIMIT",
        "rules": {"constraints": [{"kind": "astrology", "max": 1}]},
    }
]
INLINE_VOLATILITY = [
    {
        "policy_name": "vol-cap",
        "policy_type": "RISK_LIMIT",
        "rules": {"constraints": [{"kind": "volatility", "max": 0.2}]},
    }
]

FIELD_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "negative-quantity",
        _set(("decision", "trades", 0, "quantity"), -5),
        "decision.trades[0].quantity",
        "invalid_request",
    ),
    (
        "unknown-field",
        _set(("decision", "trades", 0, "qty"), 5),
        "decision.trades[0].qty",
        "invalid_request",
    ),
    (
        "wrong-type",
        _set(("portfolio_state", "cash"), "lots"),
        "portfolio_state.cash",
        "invalid_request",
    ),
    (
        "unknown-symbol",
        _set(("decision", "trades", 0, "symbol"), "ZZZZ"),
        "decision.trades[0].symbol",
        "invalid_input",
    ),
    (
        "position-without-instrument",
        _set(("portfolio_state", "positions", 1, "symbol"), "NOPE"),
        "portfolio_state.positions[1].symbol",
        "invalid_input",
    ),
    (
        "unknown-applicable-policy",
        _set(("applicable_policies",), ["sector-caps", "no-such-policy"]),
        "applicable_policies[1]",
        "invalid_input",
    ),
    (
        "volatility-without-risk-model",
        _set(("policies",), INLINE_VOLATILITY),
        "portfolio_state.risk_model",
        "invalid_input",
    ),
    (
        "too-long-decision-id",
        _set(("decision", "decision_id"), "d" * 201),
        "decision.decision_id",
        "invalid_request",
    ),
    ("bad-mode", _set(("mode",), "approve"), "mode", "invalid_request"),
    (
        "cash-in-a-malformed-currency",
        _set(("portfolio_state", "cash"), {"USD": 1.0, "usd": 5.0}),
        "portfolio_state.cash.usd.[key]",
        "invalid_request",
    ),
    (
        "non-finite-cash-in-a-currency",
        _set(("portfolio_state", "cash"), {"USD": 1.0, "JPY": "nan"}),
        "portfolio_state.cash.JPY",
        "invalid_request",
    ),
    (
        "currency-without-a-rate",
        _set(("portfolio_state", "instruments", 0, "currency"), "JPY"),
        "portfolio_state.fx_rates",
        "invalid_input",
    ),
    (
        "base-currency-rate-not-one",
        _set(("portfolio_state", "fx_rates"), {"USD": 1.1}),
        "portfolio_state.fx_rates.USD",
        "invalid_input",
    ),
    (
        "malformed-fx-pair",
        _set(("decision", "fx_trades"), [{"pair": "EURUS", "side": "BUY", "quantity": 1}]),
        "decision.fx_trades[0].pair",
        "invalid_request",
    ),
    (
        "fx-trade-without-a-rate",
        _set(("decision", "fx_trades"), [{"pair": "EURUSD", "side": "BUY", "quantity": 1}]),
        "portfolio_state.fx_rates",
        "invalid_input",
    ),
    (
        "drift-without-targets",
        _set(
            ("policies",),
            [
                {
                    "policy_name": "drift",
                    "policy_type": "INVESTMENT_MANDATE",
                    "rules": {"constraints": [{"kind": "target_drift", "max": 0.02}]},
                }
            ],
        ),
        "portfolio_state.target_weights",
        "invalid_input",
    ),
]


def test_bad_request_is_422_naming_the_field_path(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    """One app, every case; the failure message lists each case that went wrong."""
    _create_policies(client, core)
    wrong: list[str] = []
    for case, edit, field, error in FIELD_CASES:
        body = load_request("small-rebalance")
        edit(body)
        r = _validate(client, body)
        answer = r.json()
        if r.status_code != 422 or answer.get("error") != error:
            wrong.append(f"{case}: {r.status_code} {r.text[:150]}")
        elif field not in _fields(answer) or field not in answer["message"]:
            wrong.append(f"{case}: field {field!r} not named: {answer}")
    assert not wrong, "\n".join(wrong)
    assert _counts(client) == (0, 0, 0)


NON_FINITE: list[tuple[str, tuple[str | int, ...], str]] = [
    ("NaN", ("portfolio_state", "cash"), "portfolio_state.cash"),
    ("Infinity", ("decision", "trades", 0, "quantity"), "decision.trades[0].quantity"),
    (
        "-Infinity",
        ("portfolio_state", "positions", 0, "quantity"),
        "portfolio_state.positions[0].quantity",
    ),
]


def test_non_finite_json_numbers_are_422_naming_the_field(
    client: TestClient, load_request: RequestLoader
) -> None:
    for literal, where, field in NON_FINITE:
        body = load_request("small-rebalance")
        _set(where, "@@")(body)
        text = json.dumps(body).replace('"@@"', literal)
        assert literal in text  # Python's json parses these into floats; the service must not.
        r = client.post(
            "/api/v1/validate", content=text, headers={"content-type": "application/json"}
        )
        answer = _assert_error(r, 422, "invalid_request")
        assert field in _fields(answer), answer


def _raw(content: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": content, "headers": {"content-type": content_type}}


def _edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = example_request("small-rebalance")
    body["decision"]["decision_id"] = f"bad-{uuid.uuid4().hex[:8]}"
    edit(body)
    return {"json": body}


def _long_sector(body: dict[str, Any]) -> None:
    for instrument in body["portfolio_state"]["instruments"]:
        instrument["sector"] = "Sector " + "x" * 300


def _bad_inputs() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, httpx keyword arguments) of inputs that must never give a 500."""
    good_policy = core_policies()[0]
    nul_policy = dict(good_policy, policy_name="nul-policy", description="a\u0000b")
    return [
        ("malformed-json", "POST", "/api/v1/validate", _raw(b'{"decision": ')),
        ("json-array", "POST", "/api/v1/validate", {"json": [1, 2, 3]}),
        ("empty-body", "POST", "/api/v1/validate", _raw(b"")),
        ("not-utf8", "POST", "/api/v1/validate", _raw(b"\xff\xfe\x00{")),
        ("text-plain", "POST", "/api/v1/validate", _raw(b"hello", "text/plain")),
        (
            "trades-not-a-list",
            "POST",
            "/api/v1/validate",
            _edited(_set(("decision", "trades"), "x")),
        ),
        ("state-null", "POST", "/api/v1/validate", _edited(_set(("portfolio_state",), None))),
        (
            "unknown-constraint-kind",
            "POST",
            "/api/v1/validate",
            _edited(_set(("policies",), INLINE_UNKNOWN_KIND)),
        ),
        (
            "volatility-without-risk-model",
            "POST",
            "/api/v1/validate",
            _edited(_set(("policies",), INLINE_VOLATILITY)),
        ),
        (
            "portfolio-mismatch",
            "POST",
            "/api/v1/validate",
            _edited(_set(("portfolio_state", "portfolio_id"), "other")),
        ),
        (
            "negative-nav",
            "POST",
            "/api/v1/validate",
            _edited(_set(("portfolio_state", "cash"), -1e9)),
        ),
        (
            "nul-in-decision-id",
            "POST",
            "/api/v1/validate",
            _edited(_set(("decision", "decision_id"), "dec\u0000x")),
        ),
        ("300-char-sector-name", "POST", "/api/v1/validate", _edited(_long_sector)),
        ("policy-not-an-object", "POST", "/api/v1/policies", {"json": "policy"}),
        (
            "policy-bad-name",
            "POST",
            "/api/v1/policies",
            {"json": dict(good_policy, policy_name="")},
        ),
        ("policy-nul-description", "POST", "/api/v1/policies", {"json": nul_policy}),
        ("patch-a-list", "PATCH", f"/api/v1/policies/{good_policy['policy_name']}", {"json": [1]}),
        ("patch-unknown-policy", "PATCH", "/api/v1/policies/nope", {"json": {"enabled": False}}),
        ("get-nul-policy-name", "GET", "/api/v1/policies/a%00b", {}),
        ("get-nul-decision-id", "GET", "/api/v1/validations/a%00b", {}),
        ("filter-bad-policy-type", "GET", "/api/v1/policies?policy_type=NOPE", {}),
        ("filter-bad-enabled", "GET", "/api/v1/policies?enabled=maybe", {}),
        ("filter-bad-severity", "GET", "/api/v1/violations?severity=SEVERE", {}),
        ("filter-bad-since", "GET", "/api/v1/violations?since=yesterday", {}),
        ("filter-limit-0", "GET", "/api/v1/violations?limit=0", {}),
        ("filter-nul-portfolio", "GET", "/api/v1/violations?portfolio_id=a%00b", {}),
        ("filter-huge-offset", "GET", f"/api/v1/violations?offset={10**20}", {}),
        ("violation-id-not-int", "PATCH", "/api/v1/violations/abc", {"json": {}}),
        ("violation-id-2**31", "PATCH", f"/api/v1/violations/{2**31}", {"json": {}}),
        ("violation-id-10**20", "PATCH", f"/api/v1/violations/{10**20}", {"json": {}}),
        ("violation-note-not-str", "PATCH", "/api/v1/violations/1", {"json": {"note": 5}}),
    ]


def test_bad_input_is_never_a_500(client: TestClient, core: list[dict[str, Any]]) -> None:
    """One app, many bad inputs; the failure message lists every input that gave a 5xx."""
    _create_policies(client, core)
    served_errors: list[str] = []
    for name, method, path, kwargs in _bad_inputs():
        r = client.request(method, path, **kwargs)
        if r.status_code >= 500:
            served_errors.append(f"{name}: {method} {path} -> {r.status_code} {r.text[:120]}")
            continue
        assert r.headers["content-type"].startswith("application/json"), name
        if r.status_code >= 400:
            body = r.json()
            assert "error" in body and "message" in body, (name, body)
    assert not served_errors, "bad input answered with a server error:\n" + "\n".join(served_errors)


def test_unknown_route_and_method_use_the_json_error_shape(client: TestClient) -> None:
    _assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    _assert_error(client.put("/api/v1/validate", json={}), 405, "method_not_allowed")


HUGE_QUANTITY = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from api.http.app import create_app
    from api.settings import Settings
    from tests.api.conftest import core_policies, example_request

    body = example_request("small-rebalance")
    body["policies"] = core_policies()
    body["decision"]["trades"][0]["quantity"] = 1e50
    app = create_app(Settings(database_url=sys.argv[1], events="none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/api/v1/validate", json=body)
    print(json.dumps({"status": r.status_code, "body": r.text[:300]}))
    """
)


def test_huge_finite_quantity_does_not_kill_the_server(tmp_path: Path) -> None:
    """Run in a child process: the failure this guards against is a crash, not an exception."""
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            HUGE_QUANTITY,
            f"sqlite:///{tmp_path / 'pes.db'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        f"the server process died (exit {done.returncode}) on a trade of 1e50 shares:\n"
        f"{done.stdout[-500:]}\n{done.stderr[max(0, done.stderr.find('Fatal Python')) :][:2000]}"
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] in (200, 422), result


# --- restart, atomicity, fail closed -------------------------------------------------------


def test_policies_and_validations_survive_a_restart(
    database_url: str, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    settings = Settings(database_url=database_url, events="none")
    with TestClient(create_app(settings)) as first:
        _create_policies(first, core)
        patched = first.patch("/api/v1/policies/cash-floor", json={"description": "Keep 2%"})
        assert patched.status_code == 200
        answer = _validate(first, load_request("aapl-overweight")).json()
        policies_before = first.get("/api/v1/policies").json()

    with TestClient(create_app(settings)) as second:
        assert second.get("/readyz").json()["checks"]["policies"] == f"ok ({len(core)} loaded)"
        assert second.get("/api/v1/policies").json() == policies_before
        versions = second.get("/api/v1/policies/cash-floor/versions").json()
        assert [v["change"] for v in versions] == ["create", "patch"]
        assert second.get("/api/v1/validations/dec-0001").json() == answer
        replay = _validate(second, load_request("aapl-overweight"))
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == answer
        assert second.get("/api/v1/violations").json()["total"] == len(answer["violations"])


def _fail_event_of(monkeypatch: pytest.MonkeyPatch, client: TestClient) -> None:
    def boom(*_a: Any, **_k: Any) -> dict[str, Any]:
        raise OperationalError("INSERT INTO event_outbox", {}, Exception("disk full"))

    monkeypatch.setattr(api.store.validations, "event_of", boom)


def _fail_outbox_insert(monkeypatch: pytest.MonkeyPatch, client: TestClient) -> None:
    """The outbox INSERT itself fails in the database (duplicate event_id)."""
    fixed = uuid.UUID("00000000-0000-4000-8000-000000000001")
    with services_of(client).store.engine.begin() as conn:
        conn.execute(
            event_outbox.insert().values(
                event_id=str(fixed),
                event_type="policy_validation_completed",
                payload={},
                created_at=datetime.now(UTC),
                published_at=datetime.now(UTC),
                attempts=1,
            )
        )
    # event_of draws its event_id from uuid.uuid4 (the module's, i.e. the global one).
    monkeypatch.setattr("api.store.validations.uuid.uuid4", lambda: fixed)


@pytest.mark.parametrize(
    "break_outbox", [_fail_event_of, _fail_outbox_insert], ids=["event-of", "outbox-insert"]
)
def test_validation_its_violations_and_its_event_commit_together(
    client: TestClient,
    core: list[dict[str, Any]],
    load_request: RequestLoader,
    monkeypatch: pytest.MonkeyPatch,
    break_outbox: Callable[[pytest.MonkeyPatch, TestClient], None],
) -> None:
    _create_policies(client, core)
    with monkeypatch.context() as m:
        break_outbox(m, client)
        events_before = len(_rows(client, event_outbox))
        r = _validate(client, load_request("aapl-overweight"))
        assert r.status_code in (500, 503), r.text
        assert "is_compliant" not in r.json()
        assert len(_rows(client, validations)) == 0
        assert len(_rows(client, policy_violations)) == 0
        assert len(_rows(client, event_outbox)) == events_before
        _assert_error(client.get("/api/v1/validations/dec-0001"), 404)

    # Nothing half-written blocks the retry.
    r = _validate(client, load_request("aapl-overweight"))
    assert r.status_code == 200
    assert "idempotent-replayed" not in r.headers
    assert _counts(client) == (1, len(r.json()["violations"]), events_before + 1)


def _unreachable(statement: str) -> Callable[..., Any]:
    """A store method that fails as a lost database connection does."""

    def fail(*_a: Any, **_k: Any) -> Any:
        raise OperationalError(statement, {}, Exception("connection refused"))

    return fail


def test_validate_fails_closed_when_policies_cannot_be_loaded(
    client: TestClient,
    core: list[dict[str, Any]],
    load_request: RequestLoader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _create_policies(client, core)

    monkeypatch.setattr(
        services_of(client).store.policies, "list", _unreachable("SELECT portfolio_policies")
    )
    body = _assert_error(_validate(client, load_request("small-rebalance")), 503, "unavailable")
    assert "NOT validated" in body["message"]
    assert "is_compliant" not in body
    assert _counts(client) == (0, 0, 0)
    metrics = _metrics(client)
    assert _sample(metrics, "pes_validations_total", outcome="unavailable") == 1
    assert _sample(metrics, "pes_validations_total", outcome="compliant") == 0
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["policies"].startswith("error")


def test_an_unreadable_portfolio_tree_fails_closed_and_counts_only_validations(
    client: TestClient,
    core: list[dict[str, Any]],
    load_request: RequestLoader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _create_policies(client, core)

    monkeypatch.setattr(
        services_of(client).store.portfolios, "lineage", _unreachable("SELECT portfolios")
    )
    body = _assert_error(_validate(client, load_request("small-rebalance")), 503, "unavailable")
    assert "hierarchy cannot be loaded" in body["message"]
    state = load_request("small-rebalance")["portfolio_state"]
    for route in ("/api/v1/capacity", "/api/v1/constraints"):
        r = client.post(route, json={"portfolio_state": state})
        assert "hierarchy cannot be loaded" in _assert_error(r, 503, "unavailable")["message"]
    # Only the validation counts as an unavailable validation.
    assert _sample(_metrics(client), "pes_validations_total", outcome="unavailable") == 1


def test_validate_fails_closed_on_an_unreadable_stored_policy(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _create_policies(client, core)
    with services_of(client).store.engine.begin() as conn:
        conn.execute(
            portfolio_policies.update()
            .where(portfolio_policies.c.policy_name == "cash-floor")
            .values(definition={"policy_name": "cash-floor", "rules": "garbled"})
        )
    _assert_error(_validate(client, load_request("small-rebalance")), 503, "unavailable")
    assert _counts(client) == (0, 0, 0)
    assert client.get("/readyz").status_code == 503


# --- metrics -------------------------------------------------------------------------------


def test_metrics_by_route_template_outcome_cache_and_solver_time(
    client: TestClient, core: list[dict[str, Any]], load_request: RequestLoader
) -> None:
    _create_policies(client, core)
    assert client.get("/api/v1/policies/single-name-cap").status_code == 200
    assert client.get("/api/v1/policies/cash-floor/versions").status_code == 200
    first = load_request("aapl-overweight")
    assert _validate(client, first).status_code == 200
    assert _validate(client, first).status_code == 200  # replay
    second = load_request("aapl-overweight")
    second["decision"]["decision_id"] = "dec-0001-b"  # same structure: compile cache hit
    assert _validate(client, second).status_code == 200
    assert _validate(client, load_request("small-rebalance")).status_code == 200
    assert client.get("/api/v1/validations/nope").status_code == 404

    metrics = _metrics(client)
    routes = {
        dict(labels)["route"] for name, labels in metrics if name == "pes_http_requests_total"
    }
    for template in (
        "/api/v1/policies",
        "/api/v1/policies/{name}",
        "/api/v1/policies/{name}/versions",
        "/api/v1/validate",
        "/api/v1/validations/{decision_id}",
    ):
        assert template in routes, sorted(routes)
    raw = [r for r in routes if "single-name-cap" in r or "cash-floor" in r or "nope" in r]
    assert not raw, f"raw paths used as labels: {raw}"
    requests = "pes_http_requests_total"
    assert _sample(metrics, requests, method="POST", route="/api/v1/validate", status="200") == 4
    assert _sample(metrics, requests, method="POST", route="/api/v1/policies", status="201") == 4
    assert (
        _sample(
            metrics,
            requests,
            method="GET",
            route="/api/v1/validations/{decision_id}",
            status="404",
        )
        == 1
    )
    assert (
        _sample(
            metrics,
            "pes_http_request_duration_seconds_count",
            method="POST",
            route="/api/v1/validate",
        )
        == 4
    )

    assert _sample(metrics, "pes_validations_total", outcome="non_compliant") == 2
    assert _sample(metrics, "pes_validations_total", outcome="compliant") == 1
    assert _sample(metrics, "pes_validations_total", outcome="replayed") == 1
    assert _sample(metrics, "pes_compile_cache_hits_total") >= 1
    assert _sample(metrics, "pes_compile_cache_misses_total") >= 1
    assert _sample(metrics, "pes_adjust_seconds_count") >= 2  # the two adjusted decisions
    assert _sample(metrics, "pes_adjust_seconds_sum") > 0
    # Three validations' events, and a transition event per violation a later one cured.
    events = [r["event_type"] for r in _rows(client, event_outbox)]
    assert events.count("policy_validation_completed") == 3
    assert _sample(metrics, "pes_outbox_pending") == len(events)


# --- PostgreSQL specifics ------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_tables_are_created_in_the_test_schema(client: TestClient) -> None:
    with services_of(client).store.engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        tables = set(
            conn.execute(
                sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalars()
        )
    assert schema.startswith("pes_test_")
    assert set(TABLES) <= tables


def test_store_open_accepts_a_url_with_percent_escapes() -> None:
    """A DSN with %-escapes (`options=-csearch_path%3D...`, a password with `%40`) must open.

    `api.store.db.alembic_config` passes the rendered URL to configparser, whose
    interpolation rejects a bare `%`.
    """
    url = psycopg_url(postgres_url())
    schema = f"pes_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        store = Store.open(f"{url}?options=-csearch_path%3D{schema}")
        store.engine.dispose()
        with admin.connect() as conn:
            tables = set(
                conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": schema},
                ).scalars()
            )
        assert set(TABLES) <= tables
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_a_multi_currency_request_keeps_its_fx_trades_when_it_can(client: TestClient) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    body = json.loads((examples / "currencies" / "eu-balanced.json").read_text("utf-8"))
    body["decision"]["trades"] = [{"symbol": "SONY", "side": "BUY", "quantity": 1_200}]
    body["policies"] = yaml.safe_load(
        (examples / "policies" / "multi-currency.yaml").read_text("utf-8")
    )
    r = _validate(client, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [(v["violation_type"], v["subject"]) for v in answer["violations"]] == [
        ("cash.min", "JPY")
    ]
    adjusted = answer["adjusted_decision"]
    assert adjusted["is_compliant"] is True
    assert adjusted["trades"] == [{"symbol": "SONY", "side": "BUY", "quantity": 618.0}]
    assert adjusted["fx_trades"] == [{"pair": "JPYEUR", "side": "BUY", "quantity": 7_000_000.0}]
    assert answer["analytics"]["pre_trade"]["drift_total"] > 0

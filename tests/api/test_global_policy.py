"""The stored global policy over HTTP, on SQLite and PostgreSQL (docs/global-policy.md).

The session runs with the QT_* limits lifted (tests/conftest.py); the apps here name their
environment explicitly, so the real defaults (NORMAL, 1% per trade, 5 positions, 0.70
confidence required) are what these tests see unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.pool import NullPool

from api.global_controls import GlobalPolicyCache
from api.http.app import create_app
from api.settings import Settings
from api.store import Store
from api.store.db import alembic_config
from api.store.tables import event_outbox, global_policy_versions
from models import GlobalPolicy, defaults_from_environment
from tests.api.conftest import example_request, services_of

PREFIXES = ("/api/policy", "/api/v1/policy")
REAL_DEFAULTS = {
    "risk_mode": "NORMAL",
    "max_risk_per_trade": 0.01,
    "max_positions": 5,
    "global_min_confidence": 0.7,
    "require_confidence": True,
}
KEYS = {"r-key-0001": "reader", "v-key-0002": "validator", "a-key-0003": "admin"}
READER, ADMIN = {"X-API-Key": "r-key-0001"}, {"X-API-Key": "a-key-0003"}


def environment(**variables: str) -> Callable[[], GlobalPolicy]:
    """The global policy defaults of exactly this environment (nothing inherited)."""
    return lambda: defaults_from_environment(variables)


@pytest.fixture
def app_client(database_url: str) -> Iterator[TestClient]:
    """The app on an empty database whose environment sets no QT_* variable."""
    app = create_app(
        Settings(database_url=database_url, events="none"), global_defaults=environment()
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _versions(client: TestClient) -> list[int]:
    return [v["version"] for v in _ok(client.get("/api/policy/versions"))]


def _events(client: TestClient) -> list[dict[str, Any]]:
    engine = services_of(client).store.engine
    query = sa.select(event_outbox.c.payload).where(
        event_outbox.c.event_type == "global_policy_changed"
    )
    with engine.connect() as conn:
        return [row.payload for row in conn.execute(query.order_by(event_outbox.c.id))]


# --- the defaults ---------------------------------------------------------------------------


def test_an_empty_store_starts_from_the_real_defaults(app_client: TestClient) -> None:
    for prefix in PREFIXES:
        r = app_client.get(prefix)
        got = _ok(r)
        assert r.headers["ETag"] == '"1"'
        assert {k: got[k] for k in REAL_DEFAULTS} == REAL_DEFAULTS
        assert got["version"] == 1 and got["updated_by"] == "environment"
        assert got["last_updated"] and got["allowed_symbols"] == []
    assert _events(app_client) == []  # the initial version is not a change: no event


def test_qt_variables_set_the_initial_version_and_none_lifts_a_limit(database_url: str) -> None:
    defaults = environment(
        QT_RISK_MODE="defensive",
        QT_MAX_POSITIONS="None",
        QT_MAX_RISK_PER_TRADE="0.02",
        QT_CONFIDENCE_THRESHOLD="none",
    )
    app = create_app(Settings(database_url=database_url, events="none"), global_defaults=defaults)
    with TestClient(app) as client:
        got = _ok(client.get("/api/policy"))
    assert got["risk_mode"] == "DEFENSIVE" and got["max_positions"] is None
    assert got["max_risk_per_trade"] == 0.02 and got["global_min_confidence"] is None


def test_a_bad_qt_value_names_its_field() -> None:
    with pytest.raises(ValueError, match="max_positions"):
        defaults_from_environment({"QT_MAX_POSITIONS": "0"})
    with pytest.raises(ValueError, match="risk_mode"):
        defaults_from_environment({"QT_RISK_MODE": "none"})


# --- changes ----------------------------------------------------------------------------------


def test_a_merge_patch_is_a_new_version_with_its_diff_and_event(app_client: TestClient) -> None:
    _ok(app_client.patch("/api/policy", json={"model_versions": {"a": "1", "b": "2"}}))
    patch = {
        "risk_mode": "DEFENSIVE",
        "max_positions": None,  # no limit
        "allowed_symbols": ["AAPL", "MSFT"],
        "model_versions": {"a": None, "c": "3"},  # maps merge; null removes a key
    }
    r = app_client.patch("/api/v1/policy", json=patch, headers={"X-Actor": "alice"})
    got = _ok(r)
    assert r.headers["ETag"] == '"3"' and r.headers["X-PES-Change"] == "changed"
    assert got["version"] == 3 and got["updated_by"] == "alice"
    assert got["risk_mode"] == "DEFENSIVE" and got["max_positions"] is None
    assert got["model_versions"] == {"b": "2", "c": "3"}
    assert got["max_risk_per_trade"] == 0.01  # untouched
    history = _ok(app_client.get("/api/policy/versions"))
    assert [v["version"] for v in history] == [3, 2, 1]
    assert [v["change"] for v in history] == ["update", "update", "initial"]
    assert {d["path"] for d in history[0]["diff"]} == {
        "risk_mode",
        "max_positions",
        "allowed_symbols",
        "model_versions.a",
        "model_versions.c",
    }
    assert (
        history[0]["actor"] == "alice" and history[0]["global_policy"]["risk_mode"] == "DEFENSIVE"
    )
    event = _events(app_client)[-1]
    assert event["event_type"] == "global_policy_changed"
    assert (event["version"], event["previous_version"], event["actor"]) == (3, 2, "alice")
    assert event["diff"] == history[0]["diff"]
    assert event["global_policy"]["model_versions"] == {"b": "2", "c": "3"}
    assert event["changed_at"] == event["global_policy"]["last_updated"].replace("Z", "+00:00")


def test_a_patch_that_changes_nothing_stores_nothing(app_client: TestClient) -> None:
    r = app_client.patch("/api/policy", json={"risk_mode": "NORMAL"})
    assert _ok(r)["version"] == 1 and r.headers["X-PES-Change"] == "unchanged"
    assert _versions(app_client) == [1] and _events(app_client) == []


@pytest.mark.parametrize(
    ("patch", "fields"),
    [
        ({"max_positions": 0}, {"max_positions"}),
        (
            {"max_risk_per_trade": 1.5, "global_min_confidence": -0.1},
            {"max_risk_per_trade", "global_min_confidence"},
        ),
        ({"risk_mode": "PANIC"}, {"risk_mode"}),
        ({"risk_mode": None}, {"risk_mode"}),
        ({"allowed_symbols": "AAPL"}, {"allowed_symbols"}),
        ({"model_versions": {"m": 3}}, {"model_versions.m"}),
        ({"max_positions": 3, "max_position": 3}, {"max_position"}),
        ({"last_updated": "2026-12-03T00:00:00Z"}, {"last_updated"}),
    ],
)
def test_an_invalid_patch_is_a_422_naming_the_field_and_stores_nothing(
    app_client: TestClient, patch: dict[str, Any], fields: set[str]
) -> None:
    r = app_client.patch("/api/policy", json=patch)
    body = _ok(r, 422)
    assert {d["field"] for d in body["detail"]} == fields, body
    assert _ok(app_client.get("/api/policy"))["version"] == 1  # nothing partial stored
    assert _versions(app_client) == [1] and _events(app_client) == []


def test_if_match_makes_a_change_conditional(app_client: TestClient) -> None:
    r = app_client.patch("/api/policy", json={"max_positions": 9}, headers={"If-Match": '"7"'})
    assert _ok(r, 412)["error"] == "precondition_failed" and r.headers["ETag"] == '"1"'
    r = app_client.patch("/api/policy", json={"max_positions": 9}, headers={"If-Match": '"1"'})
    assert _ok(r)["version"] == 2
    r = app_client.post("/api/policy/reset", headers={"If-Match": '"1"'})
    assert r.status_code == 412
    r = app_client.post("/api/policy/risk_mode/DEFENSIVE", headers={"If-Match": 'W/"2"'})
    assert r.status_code == 412  # a weak tag matches no version
    assert _versions(app_client) == [2, 1]


def test_risk_mode_endpoints(app_client: TestClient) -> None:
    assert _ok(app_client.get("/api/policy/risk_mode"))["risk_mode"] == "NORMAL"
    got = _ok(app_client.post("/api/policy/risk_mode/defensive"))
    assert got["risk_mode"] == "DEFENSIVE" and got["version"] == 2
    got = _ok(app_client.get("/api/v1/policy/risk_mode"))
    assert (got["risk_mode"], got["version"]) == ("DEFENSIVE", 2)
    assert got["updated_by"] == "local" and got["last_updated"]
    body = _ok(app_client.post("/api/policy/risk_mode/PANIC"), 422)
    assert [d["field"] for d in body["detail"]] == ["risk_mode"]
    assert "PANIC" in body["message"] and "DEFENSIVE" in body["message"]
    assert _versions(app_client) == [2, 1]


def test_reset_goes_back_to_the_environment_defaults(app_client: TestClient) -> None:
    _ok(app_client.patch("/api/policy", json={"max_positions": None, "risk_mode": "AGGRESSIVE"}))
    got = _ok(app_client.post("/api/policy/reset"))
    assert got["version"] == 3 and {k: got[k] for k in REAL_DEFAULTS} == REAL_DEFAULTS
    assert _ok(app_client.get("/api/policy/versions"))[0]["change"] == "reset"
    assert _events(app_client)[-1]["change"] == "reset"


def test_read_endpoints_carry_the_version(app_client: TestClient) -> None:
    patch = {
        "allowed_symbols": ["AAPL"],
        "model_versions": {"lstm": "7"},
        "allowed_strategies": ["m"],
    }
    _ok(app_client.patch("/api/policy", json=patch))
    for prefix in PREFIXES:
        symbols = _ok(app_client.get(f"{prefix}/allowed_symbols"))
        models = _ok(app_client.get(f"{prefix}/model_versions"))
        status = _ok(app_client.get(f"{prefix}/status"))
        assert symbols["allowed_symbols"] == ["AAPL"] and models["model_versions"] == {"lstm": "7"}
        for body in (symbols, models, status):
            assert body["version"] == 2 and body["updated_by"] == "local" and body["last_updated"]
        assert status["status"] == "ok" and status["risk_mode"] == "NORMAL"
        assert status["controls"] == [
            "strategy_gate",
            "confidence_gate",
            "allowed_symbols",
            "max_positions",
            "max_risk_per_trade",
        ]


def test_reads_need_the_reader_role_and_changes_admin(database_url: str) -> None:
    settings = Settings(database_url=database_url, events="none", api_keys=KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/api/policy").status_code == 401
        assert client.get("/api/policy/status", headers=READER).status_code == 200
        for method, path in (
            ("patch", "/api/policy"),
            ("post", "/api/policy/reset"),
            ("post", "/api/policy/risk_mode/DEFENSIVE"),
        ):
            r = client.request(method, path, headers=READER, json={"max_positions": 3})
            assert r.status_code == 403, (method, path)
        r = client.patch("/api/v1/policy", headers=ADMIN, json={"max_positions": 3})
        assert _ok(r)["updated_by"].startswith("key:")


# --- atomicity and races ----------------------------------------------------------------------


def test_a_version_and_its_event_commit_together(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> dict[str, Any]:
        raise RuntimeError("the event cannot be built")

    monkeypatch.setattr("api.store.global_policy.event_of", broken)
    assert app_client.patch("/api/policy", json={"max_positions": 8}).status_code == 500
    monkeypatch.undo()
    assert _versions(app_client) == [1] and _events(app_client) == []
    assert _ok(app_client.get("/api/policy"))["max_positions"] == 5


def test_a_writer_finding_its_version_taken_gets_a_conflict(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = services_of(app_client).store.global_policy
    with store.engine.connect() as conn:
        first = conn.execute(sa.select(global_policy_versions)).first()
    _ok(app_client.patch("/api/policy", json={"max_positions": 8}))
    # A writer that read version 1 before version 2 was committed (without the writers'
    # lock: an older service, a manual insert) also writes version 2.
    monkeypatch.setattr(store, "_row", lambda *_args: first)
    r = app_client.patch("/api/policy", json={"max_positions": 9})
    assert "concurrently" in _ok(r, 409)["message"]
    monkeypatch.undo()
    assert _versions(app_client) == [2, 1]
    assert _ok(app_client.get("/api/policy"))["max_positions"] == 8


# --- validation applies it --------------------------------------------------------------------


def test_validation_applies_the_stored_policy_and_names_its_version(
    app_client: TestClient, core: list[dict[str, Any]]
) -> None:
    for policy in core:
        _ok(app_client.post("/api/v1/policies", json=policy), 201)
    body = example_request("small-rebalance")
    got = _ok(app_client.post("/api/v1/validate", json=body))
    assert not got["is_compliant"] and got["global_policy_version"] == 1
    assert got["risk_mode"]["source"] == "global_policy"
    names = {v["policy_name"] for v in got["violations"] if v["breach"] == "active"}
    # No confidence given (0.70 required), and the JPM sale moves 1.96% of NAV (> 1%).
    assert names == {"global-policy.confidence", "global-policy.max_risk_per_trade"}, names
    assert got["adjusted_decision"]["trades"] == []
    # This worker applies its own change at once.
    lifted = {"global_min_confidence": None, "max_risk_per_trade": None}
    _ok(app_client.patch("/api/policy", json=lifted))
    body["decision"]["decision_id"] = "dec-0002-b"
    got = _ok(app_client.post("/api/v1/validate", json=body))
    assert got["is_compliant"] and got["global_policy_version"] == 2
    _ok(app_client.post("/api/policy/risk_mode/DEFENSIVE"))
    body["decision"]["decision_id"] = "dec-0002-c"
    body["context"] = {"risk_mode": "AGGRESSIVE"}
    got = _ok(app_client.post("/api/v1/validate", json=body))
    assert got["risk_mode"] == {
        "mode": "DEFENSIVE",
        "source": "global_policy",
        "ignored_request_value": "AGGRESSIVE",
    }


def test_capacity_and_export_apply_its_limits(app_client: TestClient) -> None:
    _ok(app_client.patch("/api/policy", json={"allowed_symbols": ["AAPL"], "max_positions": None}))
    state = example_request("small-rebalance")["portfolio_state"]
    cap = {"kind": "weight_bounds", "max": 0.5}
    inline = [
        {"policy_name": "cap", "policy_type": "POSITION_LIMIT", "rules": {"constraints": [cap]}}
    ]
    got = _ok(app_client.post("/api/v1/capacity", json={
        "portfolio_state": state, "symbols": ["JNJ", "AAPL"], "policies": inline}))  # fmt: skip
    by_symbol = {c["symbol"]: c for c in got["symbols"]}
    assert by_symbol["JNJ"]["buy"]["shares"] == 0, by_symbol["JNJ"]  # not allowed
    assert by_symbol["AAPL"]["buy"]["shares"] > 0
    exported = _ok(app_client.post("/api/v1/constraints", json={
        "portfolio_state": state, "policies": inline}))  # fmt: skip
    assert "global-policy.allowed_symbols" in str(exported)


def test_stored_policy_names_of_the_global_policy_are_reserved(app_client: TestClient) -> None:
    body = {
        "policy_name": "global-policy.max_positions",
        "policy_type": "POSITION_LIMIT",
        "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.1}]},
    }
    got = _ok(app_client.post("/api/v1/policies", json=body), 422)
    assert [d["field"] for d in got["detail"]] == ["policy_name"] and "reserved" in got["message"]


def test_a_database_failure_is_a_503_never_an_unchecked_answer(app_client: TestClient) -> None:
    services = services_of(app_client)
    broken = sa.create_engine("sqlite:////nonexistent/dir/pes.db", poolclass=NullPool)
    services.global_policy = GlobalPolicyCache(
        type(services.store.global_policy)(broken), refresh_s=0
    )
    try:
        body = example_request("small-rebalance")
        cap = {"kind": "weight_bounds", "max": 0.5}
        body["policies"] = [
            {"policy_name": "cap", "policy_type": "POSITION_LIMIT", "rules": {"constraints": [cap]}}
        ]
        r = app_client.post("/api/v1/validate", json=body)
        assert _ok(r, 503)["error"] == "unavailable" and "global policy" in r.json()["message"]
    finally:
        broken.dispose()


# --- the cache --------------------------------------------------------------------------------


def test_a_worker_rereads_only_a_new_version_and_at_most_every_refresh(database_url: str) -> None:
    store = Store.open(database_url, global_defaults=environment())
    other = Store.open(database_url, migrate_schema=False, global_defaults=environment())
    now = [0.0]
    cache = GlobalPolicyCache(store.global_policy, refresh_s=0.5, clock=lambda: now[0])
    try:
        assert cache.current().version == 1 and cache.reads == 1
        other.global_policy.change(lambda p: p.model_copy(update={"max_positions": 7}), actor="b")
        now[0] = 0.4
        assert cache.current().version == 1  # not asked yet
        now[0] = 0.5
        assert cache.current().version == 2 and cache.reads == 2
        now[0] = 1.2
        assert cache.controls().policy.max_positions == 7 and cache.reads == 2  # same version
        _changed, written = store.global_policy.change(
            lambda p: p.model_copy(update={"max_positions": 6}), actor="a"
        )
        cache.written(written)  # a change through this worker: applied at once
        assert cache.current().version == 3 and cache.reads == 2
    finally:
        store.engine.dispose()
        other.engine.dispose()


# --- the migration ----------------------------------------------------------------------------


def test_a_0004_database_is_upgraded_and_gets_its_initial_version(database_url: str) -> None:
    engine = sa.create_engine(database_url, poolclass=NullPool)
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    with engine.connect() as conn:
        assert "global_policy_versions" not in sa.inspect(conn).get_table_names()
    app = create_app(
        Settings(database_url=database_url, events="none"), global_defaults=environment()
    )
    with TestClient(app) as client:
        assert _ok(client.get("/api/policy"))["version"] == 1
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    with engine.connect() as conn:
        assert "global_policy_versions" not in sa.inspect(conn).get_table_names()
    engine.dispose()

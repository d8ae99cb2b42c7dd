"""What `/readyz` and the start-up log say: the store, its policies and the event relay.

- Without an enabled strict or advisory policy every validation is refused, so the service
  is not ready (503), unless `approve_when_no_policy_applies` is on.
- The relay's state is reported ("ok", "disconnected (n pending)", "none") but a broker
  that is down leaves the service ready: events wait in the outbox.
- The global policy: the worker's copy (version, risk mode, ages, how changes reach it) is
  reported, and the service is not ready while the current version cannot be loaded (a
  validation would be 503); `/metrics` exports the same as `pes_global_policy_*`.
- Start-up logs which store it opened (password hidden), whether it was just created and
  how many policies it holds.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from api.http.app import create_app
from api.settings import Settings
from api.store.tables import global_policy_versions
from tests.api.conftest import TestClient, core_policies, example_request, services_of
from tests.api.test_relay_outages import FlakyPublisher

WAIT_S = 30.0


def _ready(client: TestClient) -> tuple[int, dict[str, str]]:
    r = client.get("/readyz")
    checks: dict[str, str] = r.json()["checks"]
    return r.status_code, checks


def _create(client: TestClient, *policies: dict[str, Any]) -> None:
    for body in policies:
        created = client.post("/api/v1/policies", json=body)
        assert created.status_code == 201, created.text


def test_not_ready_without_an_enforcing_policy(database_url: str) -> None:
    monitor, strict = core_policies()[:2]
    monitor["enforcement_level"] = "monitor"
    with TestClient(create_app(Settings(database_url=database_url, events="none"))) as client:
        status, checks = _ready(client)
        assert status == 503
        assert checks["database"] == "ok"
        assert "PES_APPROVE_WHEN_NO_POLICY_APPLIES" in checks["policies"]

        _create(client, monitor, {**strict, "enabled": False})
        status, checks = _ready(client)
        assert status == 503, "a monitor-only or disabled policy decides nothing"
        assert checks["policies"].startswith("no enabled strict or advisory policy (2 loaded)")

        enabled = client.patch(f"/api/v1/policies/{strict['policy_name']}", json={"enabled": True})
        assert enabled.status_code == 200, enabled.text
        assert _ready(client) == (
            200,
            {
                "database": "ok",
                "policies": "ok (2 loaded)",
                "global_policy": "ok (version 1, NORMAL)",
                "events": "none",
            },
        )


def test_ready_without_a_policy_when_approval_without_one_is_allowed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PES_APPROVE_WHEN_NO_POLICY_APPLIES", "true")
    settings = Settings(database_url=database_url, events="none")
    assert settings.approve_when_no_policy_applies
    assert not Settings.model_fields["approve_when_no_policy_applies"].default
    with TestClient(create_app(settings)) as client:
        status, checks = _ready(client)
        assert status == 200
        assert checks["policies"].startswith("ok (0 loaded, none enforcing")


def test_readyz_reports_the_relay_and_stays_ready_while_the_broker_is_down(
    tmp_path: Path,
) -> None:
    broker = FlakyPublisher("gone")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'pes.db'}", events="log", relay_interval_s=0.01
    )
    with TestClient(create_app(settings, publisher=broker)) as client:
        _create(client, *core_policies())
        answer = client.post("/api/v1/validate", json=example_request("aapl-overweight"))
        assert answer.status_code == 200, answer.text

        status, checks = _ready(client)
        assert status == 200, "events wait in the outbox: still ready"
        assert checks["events"] == "disconnected (1 pending)"

        broker.state = "up"
        deadline = time.monotonic() + WAIT_S
        while _ready(client)[1]["events"] != "ok":
            assert time.monotonic() < deadline, "the relay never reported the broker back"
            time.sleep(0.05)
        assert broker.sent and _ready(client)[0] == 200


def test_start_up_logs_the_store_whether_it_was_created_and_its_policies(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password="s3cret-pw")  # the test server trusts local connections
    database = url.render_as_string(hide_password=False)
    caplog.set_level(logging.INFO, logger="pes.app")

    def opened() -> str:
        [line] = [
            r.getMessage()
            for r in caplog.records
            if r.name == "pes.app" and r.getMessage().startswith("store ")
        ]
        caplog.clear()
        return line

    with TestClient(create_app(Settings(database_url=database, events="none"))) as client:
        _create(client, *core_policies())
    first = opened()
    shown = url.render_as_string(hide_password=True)
    assert first == f"store {shown}: created (empty schema, migrated), 0 policies"
    assert "s3cret-pw" not in first

    with TestClient(create_app(Settings(database_url=database, events="none"))):
        pass
    assert opened() == f"store {shown}: existing, {len(core_policies())} policies"


# --- the global policy ----------------------------------------------------------------------


def _metric(text: str, name: str) -> float:
    """The value of one sample (`name` with its labels) in a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")


def test_readyz_and_metrics_report_the_global_policy(database_url: str) -> None:
    with TestClient(create_app(Settings(database_url=database_url, events="none"))) as client:
        _create(client, *core_policies())
        listens = database_url.startswith("postgresql")
        if listens:  # it connects in the background
            deadline = time.monotonic() + WAIT_S
            while (
                not client.get("/readyz")
                .json()["global_policy"]["propagation"]
                .startswith("notify")
            ):
                assert time.monotonic() < deadline, "never listening"
                time.sleep(0.05)
        r = client.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["checks"]["global_policy"] == "ok (version 1, NORMAL)"
        report = body["global_policy"]
        assert report["version"] == 1 and report["risk_mode"] == "NORMAL"
        assert 0 <= report["age_s"] < WAIT_S and 0 <= report["checked_s"] < WAIT_S
        expected = "notify (LISTEN)" if listens else "polling every 0.5 s"
        assert report["propagation"].startswith(expected), report

        page = client.get("/metrics").text
        assert _metric(page, "pes_global_policy_version") == 1
        assert 0 <= _metric(page, "pes_global_policy_age_seconds") < WAIT_S
        assert 0 <= _metric(page, "pes_global_policy_staleness_seconds") < WAIT_S
        assert _metric(page, 'pes_global_policy_risk_mode{mode="NORMAL"}') == 1
        assert _metric(page, 'pes_global_policy_risk_mode{mode="DEFENSIVE"}') == 0
        assert _metric(page, "pes_global_policy_listening") == (1 if listens else 0)
        reads = _metric(page, "pes_global_policy_reads_total")

        assert client.post("/api/policy/risk_mode/DEFENSIVE").status_code == 200
        time.sleep(0.2)
        body = client.get("/readyz").json()
        assert body["checks"]["global_policy"] == "ok (version 2, DEFENSIVE)"
        assert body["global_policy"]["version"] == 2 and body["global_policy"]["age_s"] < 1.0
        page = client.get("/metrics").text
        assert _metric(page, "pes_global_policy_version") == 2
        assert _metric(page, 'pes_global_policy_risk_mode{mode="DEFENSIVE"}') == 1
        assert _metric(page, 'pes_global_policy_risk_mode{mode="NORMAL"}') == 0
        assert _metric(page, "pes_global_policy_reads_total") >= reads


def test_not_ready_while_the_global_policy_cannot_be_loaded(database_url: str) -> None:
    """A stored version the service cannot read (here: an unknown risk mode written behind
    its back) is never applied: not ready, nothing reported as loaded, validations 503;
    the scrape still answers, with NaN. (Not listening: on PostgreSQL the listener would
    load the version, still readable, as it starts.)"""
    settings = Settings(database_url=database_url, events="none", global_policy_listen=False)
    with TestClient(
        create_app(settings),
        raise_server_exceptions=False,
    ) as client:
        _create(client, *core_policies())
        engine = services_of(client).store.engine
        with engine.begin() as conn:
            conn.execute(global_policy_versions.update().values(content={"risk_mode": "WILD"}))
        r = client.get("/readyz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["checks"]["global_policy"] == (
            "error: the global policy cannot be loaded: ValidationError"
        )
        assert body["checks"]["database"] == "ok" and body["global_policy"] is None
        v = client.post("/api/v1/validate", json=example_request("small-rebalance"))
        assert v.status_code == 503, v.text
        page = client.get("/metrics").text
        assert math.isnan(_metric(page, "pes_global_policy_version"))
        assert _metric(page, 'pes_global_policy_risk_mode{mode="NORMAL"}') == 0

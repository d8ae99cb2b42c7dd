"""The monitors' status over the API and on the dashboard: running, stopped or stale.

The rows are written as `pes monitor` writes them (tests/api/test_monitor.py runs the real
monitor and reads them back); here their ages are set to decide each health exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from api.settings import Settings
from api.store import STALE_AFTER_S, Store, read_monitor_status
from api.store.tables import monitor_status

KEYS = {"a-key-0001": "admin", "r-key-0002": "reader"}
READER = {"X-API-Key": "r-key-0002"}


def _row(consumer: str, state: str, heartbeat_age_s: float, **counts: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = dict.fromkeys(
        ("lag", "portfolios", "consumed", "duplicates", "rejected", "checks"), 0
    ) | {"breaches_opened": 0, "breaches_cleared": 0}
    return (
        base
        | counts
        | {
            "consumer": consumer,
            "state": state,
            "started_at": now - timedelta(hours=1),
            "heartbeat_at": now - timedelta(seconds=heartbeat_age_s),
            "last_update_at": now - timedelta(seconds=heartbeat_age_s + 1),
        }
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    settings = Settings(database_url=url, events="none", api_keys=KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _store(client: TestClient) -> Store:
    app: Any = client.app
    store: Store = app.state.services.store
    return store


def _write(client: TestClient, *rows: dict[str, Any]) -> None:
    with _store(client).engine.begin() as conn:
        conn.execute(monitor_status.insert(), list(rows))


def test_health_is_running_stopped_or_stale_by_the_heartbeats_age(client: TestClient) -> None:
    _write(
        client,
        _row("fresh", "running", 1.0, consumed=120, lag=3, portfolios=40, breaches_opened=2),
        _row("silent", "running", STALE_AFTER_S + 5),
        _row("done", "stopped", 3600.0, consumed=7),
    )
    now = datetime.now(UTC)
    health = {s.consumer: s.health(now) for s in read_monitor_status(_store(client).engine)}
    assert health == {"fresh": "running", "silent": "stale", "done": "stopped"}

    r = client.get("/api/v1/monitor", headers=READER)
    assert r.status_code == 200, r.text
    by_name = {m["consumer"]: m for m in r.json()}
    assert [m["consumer"] for m in r.json()] == ["done", "fresh", "silent"]
    assert {name: m["health"] for name, m in by_name.items()} == health
    fresh = by_name["fresh"]
    assert (fresh["consumed"], fresh["lag"], fresh["portfolios"]) == (120, 3, 40)
    assert fresh["breaches_opened"] == 2 and fresh["stale_after_s"] == STALE_AFTER_S
    assert 0.5 < fresh["heartbeat_age_s"] < STALE_AFTER_S
    assert by_name["silent"]["heartbeat_age_s"] > STALE_AFTER_S


def test_no_monitor_is_an_empty_list_and_callers_need_a_key(client: TestClient) -> None:
    assert client.get("/api/v1/monitor", headers=READER).json() == []
    assert client.get("/api/v1/monitor").status_code == 401


def _login(client: TestClient) -> None:
    form = client.get("/ui/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post(
        "/ui/login",
        data={"api_key": "r-key-0002", "csrf_token": token, "next": "/ui/monitor"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_the_dashboard_shows_each_monitors_health(client: TestClient) -> None:
    _login(client)
    empty = client.get("/ui/monitor")
    assert empty.status_code == 200 and 'id="no-monitor"' in empty.text
    assert 'href="/ui/monitor" aria-current="page"' in empty.text
    _write(client, _row("fresh", "running", 1.0, consumed=120), _row("silent", "running", 60))
    page = client.get("/ui/monitor")
    table = page.text.split('id="monitors"', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]
    assert "fresh" in rows[0] and "monitor-running" in rows[0] and ">120<" in rows[0]
    assert "silent" in rows[1] and "monitor-stale" in rows[1]


def test_metrics_export_each_monitors_health_age_lag_and_counters(client: TestClient) -> None:
    _write(
        client,
        _row("fresh", "running", 1.0, consumed=120, lag=3, breaches_cleared=4),
        _row("silent", "running", STALE_AFTER_S + 5),
    )
    text = client.get("/metrics", headers=READER).text
    assert 'pes_monitor_up{consumer="fresh"} 1.0' in text
    assert 'pes_monitor_up{consumer="silent"} 0.0' in text
    assert 'pes_monitor_lag{consumer="fresh"} 3.0' in text
    assert 'pes_monitor_consumed_total{consumer="fresh"} 120.0' in text
    assert 'pes_monitor_breaches_cleared_total{consumer="fresh"} 4.0' in text
    age = next(
        line
        for line in text.splitlines()
        if line.startswith('pes_monitor_heartbeat_age_seconds{consumer="silent"}')
    )
    assert float(age.rsplit(" ", 1)[1]) > STALE_AFTER_S

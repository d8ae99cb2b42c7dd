"""deploy/: the Grafana dashboard and the Prometheus alert rules hold together, and every
metric (and label) they name is one the service exposes on /metrics."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.http.app import create_app
from api.settings import Settings
from api.store.tables import monitor_status
from tests.api.conftest import core_policies, example_request

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "pes-overview.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SELECTOR = re.compile(r"\b(pes_[a-z_]+)\b(\{[^}]*\})?")
LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus, not by the service
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """Every sample name on /metrics after one adjusted validation, with its label names."""
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'pes.db'}"
    with TestClient(create_app(Settings(database_url=url, events="none"))) as client:
        for policy in core_policies():
            assert client.post("/api/v1/policies", json=policy).status_code == 201
        assert client.post("/api/v1/validate", json=example_request("aapl-overweight")).is_success
        _monitor_ran(client)
        text = client.get("/metrics").text
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    yield samples


def _monitor_ran(client: TestClient) -> None:
    """A monitor's status row, as `pes monitor` writes it (its metrics have a sample)."""
    app: Any = client.app
    now = datetime.now(UTC)
    row = dict.fromkeys(
        ("lag", "portfolios", "consumed", "duplicates", "rejected", "checks"), 0
    ) | {"breaches_opened": 0, "breaches_cleared": 0}
    row |= {"consumer": "pes-monitor", "state": "running", "started_at": now}
    row |= {"heartbeat_at": now, "last_update_at": None}
    with app.state.services.store.engine.begin() as conn:
        conn.execute(monitor_status.insert().values(**row))


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and alert rule."""
    found = []
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        for target in panel["targets"]:
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            found.append((f"alert {rule['alert']}", rule["expr"]))
    return found


def test_every_metric_and_label_named_is_exposed(exposed: dict[str, set[str]]) -> None:
    assert "pes_open_violations" in exposed and "severity" in exposed["pes_open_violations"]
    problems = []
    for where, expr in _expressions():
        names = SELECTOR.findall(expr)
        assert names, f"{where}: names no pes_ metric"
        for name, selector in names:
            if name not in exposed:
                problems.append(f"{where}: {name} is not on /metrics")
                continue
            for label in LABEL.findall(selector):
                if label not in exposed[name] | SCRAPE_LABELS:
                    problems.append(f"{where}: {name} has no label {label!r}")
    assert not problems, "\n".join(problems)


def test_the_alert_rules_are_well_formed() -> None:
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(data) == {"groups"} and data["groups"]
    names: list[str] = []
    for group in data["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"], group.get("name")
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Pes[A-Za-z]+", rule["alert"])
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert {"summary", "description"} <= set(rule["annotations"])
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            names.append(rule["alert"])
    assert len(names) == len(set(names)), "alert names repeat"


def _rectangles_overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_the_grafana_dashboard_is_well_formed() -> None:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["title"] and panel["description"]
        assert panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy") and grid["x"] + grid["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= variables | GRAFANA_BUILTINS, (panel["title"], used - variables)
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]
    for a, b in combinations(panels, 2):
        assert not _rectangles_overlap(a["gridPos"], b["gridPos"]), (a["title"], b["title"])
    covered = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in (
        "pes_validations_total",
        "pes_http_request_duration_seconds_bucket",
        "pes_adjust_seconds_bucket",
        "pes_compile_cache_hits_total",
        "pes_outbox_pending",
        "pes_open_violations",
    ):
        assert metric in covered, f"the dashboard does not show {metric}"

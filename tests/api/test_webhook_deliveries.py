"""A violation's webhook deliveries, over the API and on its dashboard page.

A reader sees where each call went only as scheme, host and port: a webhook's path and
query often are its credential.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.escalation import Escalator, WebhookSender, destination
from api.http.app import create_app
from api.settings import Settings
from api.store import Store
from models import EscalationRules
from tests.api.conftest import core_policies, example_request

KEYS = {"a-key-0001": "admin", "r-key-0002": "reader"}
ADMIN = {"X-API-Key": "a-key-0001"}
READER = {"X-API-Key": "r-key-0002"}
SECRET_HOOK = "http://127.0.0.1:9/services/T000/B000/token-abc?key=qsecret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example.com/services/T/B/secret", "https://hooks.example.com"),
        ("https://user:pw@hooks.example.com:8443/x?token=1", "https://hooks.example.com:8443"),
        ("http://[::1]:8080/hook", "http://[::1]:8080"),
        ("http://127.0.0.1:9/nothing", "http://127.0.0.1:9"),
    ],
)
def test_destination_keeps_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert destination(url) == shown


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TestClient]:
    """The service with an escalation rule for CRITICAL violations naming a webhook that
    never answers, and a validation with CRITICAL and other violations."""
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    settings = Settings(database_url=url, events="none", api_keys=KEYS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        state: Any = client.app
        store: Store = state.state.services.store
        rules = {
            "rules": [
                {
                    "name": "page-desk",
                    "level": 2,
                    "webhook": SECRET_HOOK,
                    "when": {"severities": ["CRITICAL"]},
                }
            ]
        }
        store.escalations.apply(
            EscalationRules.model_validate(rules), actor="test", now=datetime.now(UTC)
        )
        for policy in core_policies():
            assert client.post("/api/v1/policies", json=policy, headers=ADMIN).status_code == 201
        r = client.post("/api/v1/validate", json=example_request("aapl-overweight"), headers=ADMIN)
        assert r.status_code == 200, r.text
        assert Escalator(store).run_once() >= 1
        sender = WebhookSender(
            store.escalations,
            Settings(webhook_secret="s", webhook_backoff_s=60.0, webhook_max_attempts=3),
        )
        sender.send_due(datetime.now(UTC))  # the first attempt: no answer, retried in 60 s
        yield client


def _escalated_id(client: TestClient) -> int:
    items = client.get("/api/v1/violations", headers=READER).json()["items"]
    escalated = [i["id"] for i in items if i["escalation_level"] == 2]
    assert escalated
    return int(escalated[0])


def test_the_api_lists_a_violations_deliveries_without_the_webhooks_secret(
    app: TestClient,
) -> None:
    violation_id = _escalated_id(app)
    r = app.get(f"/api/v1/violations/{violation_id}/deliveries", headers=READER)
    assert r.status_code == 200, r.text
    (delivery,) = r.json()
    assert delivery["rule"] == "page-desk"
    assert delivery["destination"] == "http://127.0.0.1:9"
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert "no answer" in delivery["last_error"]
    retry_at = datetime.fromisoformat(delivery["next_attempt_at"])
    assert retry_at > datetime.now(UTC) + timedelta(seconds=30)
    assert "token-abc" not in r.text and "qsecret" not in r.text


def test_unknown_violations_and_callers_are_refused(app: TestClient) -> None:
    assert app.get("/api/v1/violations/999999/deliveries", headers=READER).status_code == 404
    assert app.get("/api/v1/violations/0/deliveries", headers=READER).status_code == 422
    assert app.get("/api/v1/violations/1/deliveries").status_code == 401


def test_a_violation_without_a_webhook_has_an_empty_list(app: TestClient) -> None:
    items = app.get("/api/v1/violations", headers=READER).json()["items"]
    quiet = [i["id"] for i in items if i["escalation_level"] == 0]
    assert quiet, "the example has violations the CRITICAL rule does not escalate"
    r = app.get(f"/api/v1/violations/{quiet[0]}/deliveries", headers=READER)
    assert r.status_code == 200 and r.json() == []


def test_the_dashboard_page_shows_the_deliveries(app: TestClient) -> None:
    violation_id = _escalated_id(app)
    app.cookies.clear()
    form = app.get("/ui/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    login = app.post(
        "/ui/login",
        data={"api_key": "r-key-0002", "csrf_token": token, "next": "/ui/violations"},
        follow_redirects=False,
    )
    assert login.status_code == 303, login.text
    page = app.get(f"/ui/violations/{violation_id}")
    assert page.status_code == 200
    section = page.text.split('id="webhooks-h"', 1)[1].split("</section>", 1)[0]
    assert 'id="deliveries"' in section
    assert "page-desk" in section and "http://127.0.0.1:9" in section
    assert "delivery-pending" in section and "next attempt" in section
    assert "token-abc" not in page.text and "qsecret" not in page.text

"""Escalation: rules by severity, age, repeat count and tree node raise a live violation's
level once; the escalation is announced through the outbox (on the rule's broker subject)
and sent to the rule's webhook, signed, retried with backoff, every attempt recorded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.cli import main
from api.escalation import Escalator, ViolationFacts, WebhookSender, decide
from api.events import NatsPublisher
from api.http.app import create_app
from api.settings import Settings
from api.store import Store, ViolationFilter
from api.store.tables import event_outbox
from models import EscalationRule, EscalationRules, PortfolioNode
from tests.api.conftest import core_policies, example_request
from tests.api.test_violation_lifecycle import ACTIVE, HEAVY, LIGHT, PASSIVE, _response
from tests.services import nats_url


def _rule(**fields: Any) -> EscalationRule:
    return EscalationRule.model_validate({"name": "r", "level": 1, **fields})


def _facts(**fields: Any) -> ViolationFacts:
    base: dict[str, Any] = {
        "policy_name": "cap",
        "severity": "HIGH",
        "age_hours": 1.0,
        "repeats_within": {30.0: 1},
        "portfolio_ids": ("desk-1", "fund-a", "firm"),
    }
    return ViolationFacts(**(base | fields))


def test_each_condition_of_a_rule_and_the_highest_level_wins() -> None:
    assert decide([_rule(when={"severities": ["HIGH"]})], _facts()) is not None
    assert decide([_rule(when={"severities": ["LOW"]})], _facts()) is None
    assert decide([_rule(when={"min_age_hours": 2})], _facts()) is None
    assert decide([_rule(when={"min_age_hours": 2})], _facts(age_hours=2.5)) is not None
    assert decide([_rule(when={"min_repeats": 3})], _facts()) is None
    assert decide([_rule(when={"min_repeats": 3})], _facts(repeats_within={30.0: 3})) is not None
    assert decide([_rule(when={"portfolio": "fund-a"})], _facts()) is not None  # the subtree
    assert decide([_rule(when={"portfolio": "fund-b"})], _facts()) is None
    assert decide([_rule(when={"policies": ["other"]})], _facts()) is None
    rules = [_rule(name="low", level=1), _rule(name="high", level=3), _rule(name="mid", level=2)]
    chosen = decide(rules, _facts())
    assert chosen is not None and chosen.name == "high"


def test_rules_are_checked_before_they_are_stored() -> None:
    with pytest.raises(ValidationError, match="unique"):
        EscalationRules.model_validate({"rules": [{"name": "a", "level": 1}] * 2})
    with pytest.raises(ValidationError, match="http"):
        _rule(webhook="ftp://example.invalid/x")
    with pytest.raises(ValidationError):
        _rule(notify="desk.*")
    with pytest.raises(ValidationError):
        _rule(level=0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'pes.db'}")
    for node in (
        PortfolioNode(portfolio_id="firm", name="Firm"),
        PortfolioNode(portfolio_id="fund-a", name="Fund A", parent_id="firm"),
        PortfolioNode(portfolio_id="desk-1", name="Desk 1", parent_id="fund-a"),
    ):
        opened.portfolios.put(node, actor="test")
    try:
        yield opened
    finally:
        opened.engine.dispose()


def _record(store: Store, decision_id: str, positions: dict[str, float], trades: Any) -> None:
    response = _response(decision_id, positions, trades)
    store.validations.record(
        response, portfolio_id="desk-1", request_hash=f"h-{decision_id}", actor="bot"
    )


def _apply(store: Store, rules: list[dict[str, Any]]) -> None:
    store.escalations.apply(
        EscalationRules.model_validate({"rules": rules}), actor="test", now=datetime.now(UTC)
    )


def _escalated_events(store: Store) -> list[dict[str, Any]]:
    t = event_outbox
    with store.engine.connect() as conn:
        payloads = [r.payload for r in conn.execute(sa.select(t.c.payload).order_by(t.c.id))]
    return [p for p in payloads if p.get("transition", {}).get("action") == "escalated"]


def test_a_violation_climbs_by_tree_node_repeats_and_age_once_per_level(store: Store) -> None:
    _apply(
        store,
        [
            {"name": "fund-a-any", "level": 1, "when": {"portfolio": "fund-a"}, "notify": "desk"},
            {"name": "repeated", "level": 2, "when": {"min_repeats": 3}},
            {"name": "two-days", "level": 3, "when": {"min_age_hours": 48}},
            {"name": "elsewhere", "level": 9, "when": {"portfolio": "fund-b"}},
        ],
    )
    _record(store, "d-1", HEAVY, PASSIVE)
    (v,), _ = store.violations.page(ViolationFilter())
    escalator = Escalator(store)
    now = datetime.now(UTC)

    assert escalator.run_once(now) == 1
    assert store.violations.get(v.id).escalation_level == 1
    assert escalator.run_once(now) == 0  # the same level is not raised twice

    _record(store, "d-2", HEAVY, PASSIVE)
    _record(store, "d-3", HEAVY, PASSIVE)
    assert escalator.run_once(now) == 1
    assert store.violations.get(v.id).escalation_level == 2

    assert escalator.run_once(now + timedelta(hours=49)) == 1
    assert store.violations.get(v.id).escalation_level == 3

    history = store.violations.history(v.id)
    escalations = [
        (h.escalation_level, h.actor, h.reason) for h in history if h.action == "escalated"
    ]
    assert escalations == [
        (1, "escalation rules v1", "rule fund-a-any (level 1)"),
        (2, "escalation rules v1", "rule repeated (level 2)"),
        (3, "escalation rules v1", "rule two-days (level 3)"),
    ]
    events = _escalated_events(store)
    assert [e["violation"]["escalation_level"] for e in events] == [1, 2, 3]
    assert [e.get("notify") for e in events] == ["desk", None, None]


def test_a_closed_violation_is_not_escalated(store: Store) -> None:
    _apply(store, [{"name": "all", "level": 1}])
    _record(store, "d-1", LIGHT, ACTIVE)
    (v,), _ = store.violations.page(ViolationFilter())
    store.violations.resolve(v.id, actor="erin", reason="fine")
    assert Escalator(store).run_once() == 0


class _Receiver(BaseHTTPRequestHandler):
    """Answers 503 to the first `fail` posts, then 200; keeps every request."""

    fail = 2
    seen: list[tuple[dict[str, str], bytes, int]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 503 if len(self.seen) < self.fail else 200
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes, int]]]]:
    seen: list[tuple[dict[str, str], bytes, int]] = []
    handler = type("Receiver", (_Receiver,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_webhook_that_fails_twice_is_delivered_once_on_the_third_attempt(
    store: Store, receiver: tuple[str, list[tuple[dict[str, str], bytes, int]]]
) -> None:
    url, seen = receiver
    _apply(store, [{"name": "hook", "level": 2, "webhook": url}])
    _record(store, "d-1", LIGHT, ACTIVE)
    settings = Settings(webhook_secret="s3cret", webhook_backoff_s=1.0, webhook_max_attempts=5)
    sender = WebhookSender(store.escalations, settings)
    now = datetime.now(UTC)
    assert Escalator(store).run_once(now) == 1

    assert sender.send_due(now) == 0  # 503
    assert sender.send_due(now) == 0  # not due yet: the backoff is 1 s
    assert sender.send_due(now + timedelta(seconds=1.5)) == 0  # 503; next after 2 s more
    assert sender.send_due(now + timedelta(seconds=2.5)) == 0  # not due
    assert sender.send_due(now + timedelta(seconds=4)) == 1  # 200
    assert sender.send_due(now + timedelta(hours=1)) == 0  # delivered: never sent again

    assert [status for _, _, status in seen] == [503, 503, 200]
    (delivery,) = store.escalations.deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert delivery.last_error is None and delivery.delivered_at is not None
    headers, body, _ = seen[-1]
    assert {h["x-pes-delivery"] for h, _, _ in seen} == {str(delivery.id)}
    stamp, mac = (part.split("=", 1)[1] for part in headers["x-pes-signature"].split(","))
    expected = hmac.new(b"s3cret", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    sent = json.loads(body)
    assert sent["event_type"] == "violation_escalated" and sent["level"] == 2
    assert sent["violation"]["portfolio_id"] == "desk-1" and sent["rule"] == "hook"


def test_a_webhook_that_never_answers_gives_up_and_says_why(store: Store) -> None:
    _apply(store, [{"name": "hook", "level": 1, "webhook": "http://127.0.0.1:9/nothing"}])
    _record(store, "d-1", LIGHT, ACTIVE)
    settings = Settings(webhook_secret="s", webhook_backoff_s=0.001, webhook_max_attempts=2)
    Escalator(store).run_once()
    sender = WebhookSender(store.escalations, settings)
    sender.send_due(datetime.now(UTC))
    sender.send_due(datetime.now(UTC) + timedelta(seconds=1))
    (delivery,) = store.escalations.deliveries()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert delivery.last_error is not None and "no answer" in delivery.last_error


def test_without_a_secret_a_webhook_is_never_sent_unsigned(store: Store) -> None:
    _apply(store, [{"name": "hook", "level": 1, "webhook": "http://127.0.0.1:9/nothing"}])
    _record(store, "d-1", LIGHT, ACTIVE)
    Escalator(store).run_once()
    calls: list[str] = []
    sender = WebhookSender(store.escalations, Settings(), post=lambda u, *_: calls.append(u) or 200)
    sender.send_due()
    (delivery,) = store.escalations.deliveries()
    assert calls == [] and delivery.status == "failed"
    assert "PES_WEBHOOK_SECRET" in (delivery.last_error or "")


def test_pes_escalations_apply_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: critical-now\n    level: 2\n    when: {severities: [CRITICAL]}\n"
        "    notify: compliance.critical\n",
        encoding="utf-8",
    )
    assert main(["escalations", "apply", str(rules), "--database-url", url]) == 0
    applied = json.loads(capsys.readouterr().out)
    assert (applied["version"], applied["changed"]) == (1, True)
    assert main(["escalations", "apply", str(rules), "--database-url", url]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False
    assert main(["escalations", "list", "--database-url", url]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["version"] == 1 and listed["rules"][0]["name"] == "critical-now"

    rules.write_text("rules:\n  - name: bad\n    level: 0\n", encoding="utf-8")
    assert main(["escalations", "apply", str(rules), "--database-url", url]) == 2
    assert "rules[0].level" in capsys.readouterr().err
    assert main(["escalations", "list", "--versions", "--database-url", url]) == 0
    assert [v["version"] for v in json.loads(capsys.readouterr().out)] == [1]


def test_an_escalation_is_published_on_the_rules_subject() -> None:
    url = nats_url()
    suffix = uuid.uuid4().hex[:12]
    stream, subject = f"PES_TEST_{suffix}", f"pes.test.{suffix}.events"
    prefix = f"pes.test.{suffix}.escalations"

    async def scenario() -> list[str]:
        import nats

        publisher = NatsPublisher(url, stream, subject, prefix)
        await publisher.start()
        try:
            await publisher.publish("e-1", {"event_type": "violation_status_changed"})
            await publisher.publish(
                "e-2", {"event_type": "violation_status_changed", "notify": "desk.high"}
            )
        finally:
            await publisher.close()
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            subjects = [(await js.get_msg(stream, seq)).subject for seq in (1, 2)]
            await js.delete_stream(stream)
            return subjects
        finally:
            await nc.close()

    assert asyncio.run(scenario()) == [subject, f"{prefix}.desk.high"]


def test_the_service_escalates_in_the_background(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    settings = Settings(database_url=url, events="none", escalation_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        services: Any = client.app
        store: Store = services.state.services.store
        _apply(store, [{"name": "critical", "level": 4, "when": {"severities": ["CRITICAL"]}}])
        for policy in core_policies():
            assert client.post("/api/v1/policies", json=policy).status_code == 201
        assert client.post("/api/v1/validate", json=example_request("aapl-overweight")).is_success
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            items = client.get("/api/v1/violations", params={"severity": "CRITICAL"}).json()
            if items["items"] and all(i["escalation_level"] == 4 for i in items["items"]):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"not escalated within 20 s: {items}")
        others = client.get("/api/v1/violations", params={"severity": "HIGH"}).json()["items"]
        assert all(i["escalation_level"] == 0 for i in others)

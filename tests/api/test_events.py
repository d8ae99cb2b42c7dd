"""The `policy_validation_completed` event: outbox relay, publishers and delivery guarantees.

Relay unit tests run on a SQLite store with an in-memory publisher. The NATS tests need a
JetStream server at PES_TEST_NATS_URL (skipped with the reason otherwise); each uses its own
stream and subject and deletes the stream afterwards. The crash test runs `pes serve` as a
real process and SIGKILLs it between the commit and the publish, and again between the
publish and the mark. Pulsar cannot run here: only what needs no broker is tested.

Portfolio used by the unit tests (NAV 100,000, every price 100): AAA 20%, BBB 10%, CCC 30%,
DDD 10%, cash 30%. With a 35% single-name cap, buying 10 AAA complies and 200 AAA does not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from api.events import (
    LogPublisher,
    NatsPublisher,
    OutboxRelay,
    PublishError,
    PulsarPublisher,
    publisher_for,
)
from api.http.app import create_app
from api.settings import Settings
from api.store import Store
from api.store.tables import event_outbox
from engine import PolicyEngine
from models import PolicyValidationRequest, PolicyValidationResponse
from tests.builders import policy, request
from tests.services import nats_url
from tests.serving import pes_serve

with warnings.catch_warnings():
    # Starlette 1.x warns (a UserWarning subclass, which the pyproject filter for
    # DeprecationWarning does not cover) when its TestClient runs on httpx, not httpx2.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "examples" / "policies" / "core.yaml"
AAPL_OVERWEIGHT = REPO / "examples" / "requests" / "aapl-overweight.json"
WAIT_S = 30.0

BASE: dict[str, float] = {"AAA": 200, "BBB": 100, "CCC": 300, "DDD": 100}
CAP = policy("cap", {"kind": "weight_bounds", "max": 0.35})
TECH = policy(
    "tech", {"kind": "group_limit", "attribute": "sector", "max": 0.5}, policy_type="SECTOR_LIMIT"
)
COMPLIANT = [("AAA", "BUY", 10.0)]
BREACHING = [("AAA", "BUY", 200.0)]
EVENT_KEYS = {"event_id", "event_type", "timestamp", "policy_validation"}
VALIDATION_KEYS = {
    "decision_id",
    "is_compliant",
    "compliance_score",
    "violations",
    "policies_checked",
}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


class FakePublisher:
    """Keeps what it was sent; refuses the event ids in `refuse` with a PublishError."""

    name = "fake"

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.attempted: list[str] = []
        self.refuse: set[str] = set()
        self.crash_on: set[str] = set()

    async def start(self) -> None:
        """Nothing to connect."""

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        self.attempted.append(event_id)
        if event_id in self.crash_on:
            raise RuntimeError("publisher bug")
        if event_id in self.refuse:
            raise PublishError("broker said no")
        self.sent.append((event_id, payload))

    async def close(self) -> None:
        """Nothing to close."""


@dataclass(frozen=True)
class Row:
    id: int
    event_id: str
    payload: dict[str, Any]
    published_at: datetime | None
    attempts: int
    last_error: str | None


def _open_store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'pes.db'}")


def _rows(engine: sa.engine.Engine) -> list[Row]:
    t = event_outbox
    query = sa.select(
        t.c.id, t.c.event_id, t.c.payload, t.c.published_at, t.c.attempts, t.c.last_error
    ).order_by(t.c.id)
    with engine.connect() as conn:
        return [Row(*r) for r in conn.execute(query)]


def _response(decision_id: str, trades: list[tuple[str, str, float]]) -> PolicyValidationResponse:
    body = request(BASE, trades, cash=30_000.0, policies=[CAP, TECH], mode="validate").model_dump(
        mode="json"
    )
    body["decision"]["decision_id"] = decision_id
    return PolicyEngine().validate(PolicyValidationRequest.model_validate(body))


def _record(store: Store, *responses: PolicyValidationResponse) -> None:
    """Each response on a portfolio of its own: on one portfolio, a compliant validation
    would cure the violations before it and add their transition events (tested in
    test_violation_lifecycle.py); here every event is a validation's."""
    for response in responses:
        _, created = store.validations.record(
            response,
            portfolio_id=f"p-{response.decision_id}",
            request_hash=f"h-{response.decision_id}",
            actor="test",
        )
        assert created


def _assert_event_of(payload: dict[str, Any], response: dict[str, Any]) -> None:
    """`payload` is the seed's policy_validation_completed event for `response` (JSON)."""
    assert EVENT_KEYS <= set(payload)
    assert payload["event_type"] == "policy_validation_completed"
    uuid.UUID(payload["event_id"])
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    validation = payload["policy_validation"]
    assert set(validation) == VALIDATION_KEYS
    assert validation["decision_id"] == response["decision_id"]
    assert validation["is_compliant"] is response["is_compliant"]
    assert validation["compliance_score"] == response["compliance_score"]
    assert validation["violations"] == sorted({v["policy_name"] for v in response["violations"]})
    assert validation["policies_checked"] == response["policies_checked"]


def _wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# 1. The relay, with an in-memory publisher
# ---------------------------------------------------------------------------------------------


def test_relay_delivers_in_commit_order_with_the_seed_schema(tmp_path: Path) -> None:
    store = _open_store(tmp_path)
    responses = [
        _response("d-1", BREACHING),
        _response("d-2", COMPLIANT),
        _response("d-3", BREACHING),
    ]
    assert not responses[0].is_compliant and responses[1].is_compliant
    _record(store, *responses)
    fake = FakePublisher()
    relay = OutboxRelay(store.outbox, fake)

    assert asyncio.run(relay.relay_once()) == 3

    rows = _rows(store.engine)
    assert [event_id for event_id, _ in fake.sent] == [r.event_id for r in rows]
    assert [p["policy_validation"]["decision_id"] for _, p in fake.sent] == ["d-1", "d-2", "d-3"]
    for (event_id, payload), response in zip(fake.sent, responses, strict=True):
        assert payload["event_id"] == event_id
        _assert_event_of(payload, response.model_dump(mode="json"))
    assert fake.sent[0][1]["policy_validation"]["violations"] == ["cap"]
    assert fake.sent[1][1]["policy_validation"]["violations"] == []
    assert len({event_id for event_id, _ in fake.sent}) == 3
    assert all(r.published_at is not None and r.attempts == 1 for r in rows)
    assert store.outbox.counts() == (0, 3)
    assert relay.published == 3 and relay.failures == 0

    # Published events are not sent again.
    assert asyncio.run(relay.relay_once()) == 0
    assert len(fake.sent) == 3


def test_relay_with_nothing_pending_publishes_nothing(tmp_path: Path) -> None:
    store = _open_store(tmp_path)
    fake = FakePublisher()
    relay = OutboxRelay(store.outbox, fake)
    assert asyncio.run(relay.relay_once()) == 0
    assert fake.attempted == []
    assert store.outbox.counts() == (0, 0)


def test_a_refused_event_and_those_after_it_stay_pending_and_go_next_round_in_order(
    tmp_path: Path,
) -> None:
    store = _open_store(tmp_path)
    _record(store, *(_response(f"d-{i}", COMPLIANT) for i in range(1, 5)))
    ids = [r.event_id for r in _rows(store.engine)]
    fake = FakePublisher()
    fake.refuse = {ids[1]}
    relay = OutboxRelay(store.outbox, fake)

    assert asyncio.run(relay.relay_once()) == 1
    assert fake.attempted == ids[:2]  # stops at the refused event: later ones wait
    first, second, *rest = _rows(store.engine)
    assert first.published_at is not None and first.attempts == 1
    assert second.published_at is None and second.attempts == 1
    assert second.last_error is not None and "broker said no" in second.last_error
    assert all(r.published_at is None and r.attempts == 0 and r.last_error is None for r in rest)
    assert store.outbox.counts() == (3, 1)
    assert relay.failures == 1

    fake.refuse.clear()
    assert asyncio.run(relay.relay_once()) == 3
    assert [event_id for event_id, _ in fake.sent] == ids
    rows = _rows(store.engine)
    assert all(r.published_at is not None for r in rows)
    assert [r.attempts for r in rows] == [1, 2, 1, 1]
    assert store.outbox.counts() == (0, 4)


def test_an_unexpected_publisher_error_still_marks_what_was_sent_before_it(
    tmp_path: Path,
) -> None:
    store = _open_store(tmp_path)
    _record(store, *(_response(f"d-{i}", COMPLIANT) for i in range(1, 4)))
    ids = [r.event_id for r in _rows(store.engine)]
    fake = FakePublisher()
    fake.crash_on = {ids[1]}
    relay = OutboxRelay(store.outbox, fake)
    with pytest.raises(RuntimeError, match="publisher bug"):
        asyncio.run(relay.relay_once())
    assert [r.published_at is not None for r in _rows(store.engine)] == [True, False, False]


def test_relay_batches_keep_commit_order(tmp_path: Path) -> None:
    store = _open_store(tmp_path)
    _record(store, *(_response(f"d-{i}", COMPLIANT) for i in range(1, 6)))
    ids = [r.event_id for r in _rows(store.engine)]
    fake = FakePublisher()
    relay = OutboxRelay(store.outbox, fake, batch=2)
    assert [asyncio.run(relay.relay_once()) for _ in range(4)] == [2, 2, 1, 0]
    assert [event_id for event_id, _ in fake.sent] == ids


def test_background_relay_delivers_committed_events_and_stops(tmp_path: Path) -> None:
    store = _open_store(tmp_path)
    fake = FakePublisher()

    async def scenario() -> None:
        relay = OutboxRelay(store.outbox, fake, interval_s=0.05)
        relay.start()
        await asyncio.to_thread(_record, store, _response("d-1", COMPLIANT))
        relay.nudge()
        deadline = time.monotonic() + WAIT_S
        while not fake.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await relay.stop()

    asyncio.run(scenario())
    assert [p["policy_validation"]["decision_id"] for _, p in fake.sent] == ["d-1"]
    assert store.outbox.counts() == (0, 1)


class SlowPublisher(FakePublisher):
    """Signals when a publish starts, then takes `delay_s` (forever when None) to finish."""

    def __init__(self, delay_s: float | None) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.started = asyncio.Event()

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        self.started.set()
        if self.delay_s is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.delay_s)
        await super().publish(event_id, payload)


def test_stop_lets_the_round_in_flight_mark_its_events(tmp_path: Path) -> None:
    # Stopping mid-publish must not leave a delivered event pending (re-sent after restart).
    store = _open_store(tmp_path)
    _record(store, _response("d-1", COMPLIANT))
    slow = SlowPublisher(delay_s=0.2)

    async def scenario() -> None:
        relay = OutboxRelay(store.outbox, slow, interval_s=0.05)
        relay.start()
        await asyncio.wait_for(slow.started.wait(), timeout=WAIT_S)
        await relay.stop()

    asyncio.run(scenario())
    assert [event_id for event_id, _ in slow.sent] == [r.event_id for r in _rows(store.engine)]
    assert store.outbox.counts() == (0, 1)


def test_stop_cancels_a_hung_round_after_the_grace_and_keeps_its_events(
    tmp_path: Path,
) -> None:
    store = _open_store(tmp_path)
    _record(store, _response("d-1", COMPLIANT))
    hung = SlowPublisher(delay_s=None)

    async def scenario() -> None:
        relay = OutboxRelay(store.outbox, hung, interval_s=0.05, stop_grace_s=0.1)
        relay.start()
        await asyncio.wait_for(hung.started.wait(), timeout=WAIT_S)
        await relay.stop()

    asyncio.run(scenario())
    assert hung.sent == []
    assert store.outbox.counts() == (1, 0)


def test_log_publisher_logs_one_json_line_per_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _open_store(tmp_path)
    responses = [_response("d-1", BREACHING), _response("d-2", COMPLIANT)]
    _record(store, *responses)
    caplog.set_level(logging.INFO, logger="pes.events")
    relay = OutboxRelay(store.outbox, LogPublisher())

    assert asyncio.run(relay.relay_once()) == 2

    records = [r for r in caplog.records if r.name == "pes.events"]
    assert len(records) == 2
    for record, row, response in zip(records, _rows(store.engine), responses, strict=True):
        message = record.getMessage()
        assert "\n" not in message
        word, event_id, body = message.split(" ", 2)
        assert (word, event_id) == ("event", row.event_id)
        payload = json.loads(body)
        assert payload == row.payload and payload["event_id"] == event_id
        _assert_event_of(payload, response.model_dump(mode="json"))


# ---------------------------------------------------------------------------------------------
# 2. NATS JetStream round trip
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamMessage:
    subject: str
    msg_id: str | None
    payload: dict[str, Any]


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return f"PES_TEST_{suffix}", f"pes.test.{suffix}.policy_validation_completed"


async def _jetstream_call(url: str, action: Callable[[Any], Any]) -> Any:
    import nats

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        return await action(nc.jetstream())
    finally:
        await nc.close()


def _stream_messages(url: str, stream: str) -> list[StreamMessage]:
    """Every message in `stream`, oldest first ([] when the stream does not exist)."""
    from nats.js.errors import NotFoundError

    async def read(js: Any) -> list[StreamMessage]:
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return []
        found = []
        if info.state.messages:
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(stream, seq)
                headers = msg.headers or {}
                found.append(
                    StreamMessage(msg.subject, headers.get("Nats-Msg-Id"), json.loads(msg.data))
                )
        return found

    result: list[StreamMessage] = asyncio.run(_jetstream_call(url, read))
    return result


def _add_stream(url: str, stream: str, subject: str) -> None:
    async def add(js: Any) -> None:
        await js.add_stream(name=stream, subjects=[subject])

    asyncio.run(_jetstream_call(url, add))


def _delete_stream(url: str, stream: str) -> None:
    from nats.js.errors import NotFoundError

    async def delete(js: Any) -> None:
        try:
            await js.delete_stream(stream)
        except NotFoundError:
            pass

    asyncio.run(_jetstream_call(url, delete))


def _publish(url: str, stream: str, subject: str, *events: tuple[str, dict[str, Any]]) -> None:
    async def publish() -> None:
        publisher = NatsPublisher(url, stream, subject)
        await asyncio.wait_for(publisher.start(), timeout=WAIT_S)
        try:
            for event_id, payload in events:
                await publisher.publish(event_id, payload)
        finally:
            await publisher.close()

    asyncio.run(publish())


def _core_policies() -> list[dict[str, Any]]:
    policies: list[dict[str, Any]] = yaml.safe_load(POLICIES.read_text(encoding="utf-8"))
    return policies


def _aapl_overweight(decision_id: str = "dec-0001") -> dict[str, Any]:
    body: dict[str, Any] = json.loads(AAPL_OVERWEIGHT.read_text(encoding="utf-8"))
    body["decision"]["decision_id"] = decision_id
    return body


def test_nats_jetstream_round_trip_and_duplicate_event_ids(tmp_path: Path) -> None:
    url = nats_url()
    stream, subject = _names()
    database = f"sqlite:///{tmp_path / 'pes.db'}"
    settings = Settings(
        database_url=database,
        events="nats",
        nats_url=url,
        nats_stream=stream,
        nats_subject=subject,
        relay_interval_s=0.05,
        api_keys={},
    )
    engine = sa.create_engine(database)
    try:
        with TestClient(create_app(settings)) as client:
            for body in _core_policies():
                created = client.post("/api/v1/policies", json=body)
                assert created.status_code == 201, created.text
            answer = client.post("/api/v1/validate", json=_aapl_overweight())
            assert answer.status_code == 200, answer.text
            response = answer.json()
            assert response["violations"], "the example should breach a stored policy"
            _wait_until(
                lambda: all(r.published_at is not None for r in _rows(engine)),
                "the relay marked the event published",
            )
        [row] = _rows(engine)

        messages = _stream_messages(url, stream)
        assert len(messages) == 1
        [message] = messages
        assert message.subject == subject
        assert message.msg_id == row.event_id == message.payload["event_id"]
        assert message.payload == row.payload
        _assert_event_of(message.payload, response)
        assert message.payload["policy_validation"]["decision_id"] == "dec-0001"

        # The same event_id published again, twice: JetStream keeps one message per id.
        _publish(url, stream, subject, (row.event_id, row.payload), (row.event_id, row.payload))
        assert [m.msg_id for m in _stream_messages(url, stream)] == [row.event_id]
        other = {**row.payload, "event_id": str(uuid.uuid4())}
        _publish(url, stream, subject, (other["event_id"], other), (other["event_id"], other))
        assert [m.msg_id for m in _stream_messages(url, stream)] == [
            row.event_id,
            other["event_id"],
        ]
    finally:
        engine.dispose()
        _delete_stream(url, stream)


def _outbox_events(store: Store, payloads: list[dict[str, Any]]) -> list[str]:
    """Put events straight into the outbox (oldest first); their ids."""
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in payloads]
    with store.engine.begin() as conn:
        conn.execute(
            event_outbox.insert(),
            [
                {
                    "event_id": event_id,
                    "event_type": "test_event",
                    "payload": {"event_id": event_id, **payload},
                    "created_at": now,
                    "attempts": 0,
                }
                for event_id, payload in zip(ids, payloads, strict=True)
            ],
        )
    return ids


def test_nats_windows_keep_order_and_a_failed_send_holds_back_the_rest_of_its_window(
    tmp_path: Path,
) -> None:
    url = nats_url()
    stream, subject = _names()
    store = _open_store(tmp_path)
    # More events than one window; the 260th is over the server's payload limit (1 MiB).
    payloads = [{"n": k} for k in range(300)]
    payloads[259] = {"n": 259, "padding": "x" * 2_000_000}
    ids = _outbox_events(store, payloads)

    async def rounds() -> tuple[int, int, list[Row]]:
        publisher = NatsPublisher(url, stream, subject)
        relay = OutboxRelay(store.outbox, publisher, batch=1000)
        await asyncio.wait_for(publisher.start(), timeout=WAIT_S)
        try:
            first = await relay.relay_once()
            after_first = _rows(store.engine)
            with store.engine.begin() as conn:  # the oversized event made small again
                conn.execute(
                    event_outbox.update()
                    .where(event_outbox.c.event_id == ids[259])
                    .values(payload={"event_id": ids[259], "n": 259})
                )
            return first, await relay.relay_once(), after_first
        finally:
            await publisher.close()

    try:
        first, second, after_first = asyncio.run(rounds())
        assert (first, second) == (259, 41)
        # The first round: the events before the oversized one marked, it failed, the rest
        # of its window (and the windows after) not sent.
        assert [r.published_at is not None for r in after_first] == [True] * 259 + [False] * 41
        assert [r.attempts for r in after_first[258:261]] == [1, 1, 0]
        assert "MaxPayloadError" in (after_first[259].last_error or "")
        assert [r.attempts for r in _rows(store.engine)[258:261]] == [1, 2, 1]
        messages = _stream_messages(url, stream)
        assert [m.msg_id for m in messages] == ids  # once each, in outbox order
        assert [m.payload["n"] for m in messages] == list(range(300))
    finally:
        store.engine.dispose()
        _delete_stream(url, stream)


# ---------------------------------------------------------------------------------------------
# 3. Crash test: SIGKILL between commit and publish, and between publish and mark
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_env(**pes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env.update({f"PES_{k.upper()}": v for k, v in pes.items()})
    return env


@contextmanager
def _server(
    db: Path, events: str, env: dict[str, str], log: Path, *, ready_s: float = WAIT_S
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`pes serve` on the SQLite file `db`, healthy; killed on the way out if still alive."""
    with pes_serve(f"sqlite:///{db}", events, env, log, ready_s=ready_s) as running:
        yield running


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=WAIT_S) == -signal.SIGKILL


def _validate_over_http(base: str, decision_id: str) -> dict[str, Any]:
    answer = httpx.post(f"{base}/api/v1/validate", json=_aapl_overweight(decision_id), timeout=30)
    assert answer.status_code == 200, answer.text
    response: dict[str, Any] = answer.json()
    return response


def test_events_survive_sigkill_and_arrive_once_per_event_id(tmp_path: Path) -> None:
    url = nats_url()
    stream, subject = _names()
    db = tmp_path / "pes.db"
    log = tmp_path / "server.log"
    env = _server_env(
        nats_url=url, nats_stream=stream, nats_subject=subject, relay_interval_s="0.1"
    )
    engine = sa.create_engine(f"sqlite:///{db}")
    _add_stream(url, stream, subject)
    try:
        # Commit a validation, then die before any publish.
        with _server(db, "none", env, log) as (proc, base):
            for body in _core_policies():
                created = httpx.post(f"{base}/api/v1/policies", json=body, timeout=30)
                assert created.status_code == 201, created.text
            first = _validate_over_http(base, "dec-0001")
            [row] = _rows(engine)
            assert row.published_at is None and row.attempts == 0
            _assert_event_of(row.payload, first)
            _kill(proc)
        assert _stream_messages(url, stream) == []

        # Restart with NATS: the committed event is delivered and marked.
        with _server(db, "nats", env, log) as (proc, base):
            _wait_until(
                lambda: _rows(engine)[0].published_at is not None,
                "the event committed before the crash is marked published",
            )
            second = _validate_over_http(base, "dec-0002")
            _wait_until(
                lambda: all(r.published_at is not None for r in _rows(engine)),
                "the second event is marked published",
            )
            _kill(proc)
        rows = _rows(engine)
        assert [r.attempts for r in rows] == [1, 1]
        _assert_event_of(rows[1].payload, second)
        messages = _stream_messages(url, stream)
        assert [m.msg_id for m in messages] == [r.event_id for r in rows]
        assert [m.payload for m in messages] == [r.payload for r in rows]

        # A crash after the publish but before the mark: the events are pending again.
        with engine.begin() as conn:
            conn.execute(event_outbox.update().values(published_at=None))
        with _server(db, "nats", env, log):
            _wait_until(
                lambda: all(r.published_at is not None for r in _rows(engine)),
                "the re-sent events are marked published again",
            )
        rows = _rows(engine)
        assert [r.attempts for r in rows] == [2, 2], "the relay should have sent them again"
        messages = _stream_messages(url, stream)
        assert [m.msg_id for m in messages] == [r.event_id for r in rows]
        assert [m.payload["policy_validation"]["decision_id"] for m in messages] == [
            "dec-0001",
            "dec-0002",
        ]
    finally:
        engine.dispose()
        _delete_stream(url, stream)


def test_serve_with_nats_starts_while_the_broker_is_down(tmp_path: Path) -> None:
    """The outbox decouples validations from the broker: an unreachable NATS at start-up
    does not keep the service from answering; the event waits in the outbox.

    The broker never comes up here, so answering at all (and /readyz reporting the relay
    disconnected) is the proof; how fast the process starts is not the subject (under load
    imports alone can take seconds), so the usual start-up wait applies."""
    db = tmp_path / "pes.db"
    env = _server_env(nats_url=f"nats://127.0.0.1:{_free_port()}", relay_interval_s="0.1")
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with _server(db, "nats", env, tmp_path / "server.log") as (_, base):
            events = httpx.get(f"{base}/readyz", timeout=30).json()["checks"]["events"]
            assert events.startswith("disconnected"), events
            for body in _core_policies():
                created = httpx.post(f"{base}/api/v1/policies", json=body, timeout=30)
                assert created.status_code == 201, created.text
            _validate_over_http(base, "dec-0001")
            [row] = _rows(engine)
            assert row.published_at is None
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# 4. Pulsar (no broker can run here) and publisher selection
# ---------------------------------------------------------------------------------------------


def test_publisher_for_each_backend() -> None:
    assert publisher_for(Settings(events="none")) is None
    assert isinstance(publisher_for(Settings(events="log")), LogPublisher)
    nats_settings = Settings(
        events="nats", nats_url="nats://h:1", nats_stream="S", nats_subject="s.x"
    )
    nats_publisher = publisher_for(nats_settings)
    assert isinstance(nats_publisher, NatsPublisher)
    assert (nats_publisher.url, nats_publisher.stream, nats_publisher.subject) == (
        "nats://h:1",
        "S",
        "s.x",
    )
    pulsar_settings = Settings(
        events="pulsar", pulsar_url="pulsar://h:6650", pulsar_topic="persistent://t/n/x"
    )
    pulsar_publisher = publisher_for(pulsar_settings)
    assert isinstance(pulsar_publisher, PulsarPublisher)
    assert (pulsar_publisher.url, pulsar_publisher.topic) == (
        "pulsar://h:6650",
        "persistent://t/n/x",
    )


def test_publish_before_start_raises_publish_error() -> None:
    payload = {"event_id": "e-1", "event_type": "policy_validation_completed"}
    pulsar_publisher = PulsarPublisher("pulsar://127.0.0.1:1", "persistent://public/default/x")
    with pytest.raises(PublishError, match="not connected"):
        asyncio.run(pulsar_publisher.publish("e-1", payload))
    nats_publisher = NatsPublisher("nats://127.0.0.1:1", "S", "s.x")
    with pytest.raises(PublishError, match="not connected"):
        asyncio.run(nats_publisher.publish("e-1", payload))


def test_pulsar_without_the_optional_extra_fails_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pulsar", None)  # `import pulsar` raises ImportError
    publisher = PulsarPublisher("pulsar://127.0.0.1:6650", "persistent://public/default/x")
    with pytest.raises(PublishError, match=r"policy-enforcement-service\[pulsar\]"):
        asyncio.run(publisher.start())


class _FakeProducer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent: list[tuple[bytes, dict[str, Any]]] = []

    def send(self, content: bytes, **kwargs: Any) -> None:
        if self.fail:
            raise RuntimeError("Pulsar error: TimeOut")
        self.sent.append((content, kwargs))


class _FakeClient:
    instances: list[_FakeClient] = []  # noqa: RUF012

    def __init__(self, service_url: str, **kwargs: Any) -> None:
        self.service_url, self.kwargs = service_url, kwargs
        self.producers: list[tuple[str, dict[str, Any], _FakeProducer]] = []
        self.closed = False
        _FakeClient.instances.append(self)

    def create_producer(self, topic: str, **kwargs: Any) -> _FakeProducer:
        producer = _FakeProducer(fail=topic.endswith("broken"))
        self.producers.append((topic, kwargs, producer))
        return producer

    def close(self) -> None:
        self.closed = True


def test_pulsar_publisher_sends_event_id_as_key_and_property(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Driven through a stand-in `pulsar` module; the keyword arguments it receives are
    checked against the real client's signatures when pulsar-client is installed."""
    fake = types.ModuleType("pulsar")
    fake.Client = _FakeClient  # type: ignore[attr-defined]
    _FakeClient.instances = []
    monkeypatch.setitem(sys.modules, "pulsar", fake)
    payload = {"event_id": "e-1", "event_type": "policy_validation_completed", "x": 1}

    async def scenario() -> None:
        good = PulsarPublisher("pulsar://broker:6650", "persistent://public/default/events")
        await good.start()
        await good.publish("e-1", payload)
        await good.close()
        broken = PulsarPublisher("pulsar://broker:6650", "persistent://public/default/broken")
        await broken.start()
        with pytest.raises(PublishError, match="TimeOut"):
            await broken.publish("e-2", payload)
        await broken.close()

    asyncio.run(scenario())
    client, broken_client = _FakeClient.instances
    assert client.service_url == "pulsar://broker:6650" and client.closed and broken_client.closed
    [(topic, producer_kwargs, producer)] = client.producers
    assert topic == "persistent://public/default/events"
    [(content, send_kwargs)] = producer.sent
    assert json.loads(content) == payload
    assert send_kwargs["partition_key"] == "e-1"
    assert send_kwargs["properties"] == {
        "event_id": "e-1",
        "event_type": "policy_validation_completed",
    }
    monkeypatch.delitem(sys.modules, "pulsar")
    try:
        import pulsar
    except ImportError:
        return  # the optional extra is not installed: nothing to check the calls against
    import inspect

    inspect.signature(pulsar.Client).bind("pulsar://broker:6650", **client.kwargs)
    inspect.signature(pulsar.Client.create_producer).bind(None, topic, **producer_kwargs)
    inspect.signature(pulsar.Producer.send).bind(None, content, **send_kwargs)


def test_pulsar_start_against_an_unreachable_broker_fails_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pulsar = pytest.importorskip("pulsar", reason="pulsar-client (optional extra) not installed")
    real_client = pulsar.Client

    def quick_client(service_url: str, **kwargs: Any) -> Any:
        kwargs["operation_timeout_seconds"] = 2  # the publisher's 10 s, shortened for the test
        return real_client(service_url, **kwargs)

    monkeypatch.setattr(pulsar, "Client", quick_client)
    publisher = PulsarPublisher(
        f"pulsar://127.0.0.1:{_free_port()}", "persistent://public/default/pes-test"
    )
    outcome: list[BaseException | None] = []

    async def attempt() -> None:
        try:
            await publisher.start()
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)
        finally:
            await publisher.close()

    worker = threading.Thread(target=lambda: asyncio.run(attempt()), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=WAIT_S)
    if worker.is_alive():
        pytest.fail(f"PulsarPublisher.start() still blocked after {WAIT_S:.0f} s")
    [error] = outcome
    assert error is not None, "start() should fail without a broker"
    assert isinstance(error, PublishError | pulsar.PulsarException), repr(error)
    assert str(error)
    assert time.monotonic() - started < WAIT_S

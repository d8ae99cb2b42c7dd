"""The relay through a broker outage and a database outage: logged when each starts and when
it ends, never once per round; events wait in the outbox and go out when it is over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from api.events import ConnectionLost, OutboxRelay, PublishError
from api.store import Store
from tests.api.test_events import BREACHING, COMPLIANT, _record, _response

ROUNDS_DOWN = 15
"""Relay rounds (10 ms apart) spent in each outage: plenty of chances to log every round."""
WAIT_S = 30.0


class FlakyPublisher:
    """A broker whose `state` is "up", "refusing" (connected, acknowledges nothing) or
    "gone" (no connection)."""

    name = "flaky"

    def __init__(self, state: str) -> None:
        self.state = state
        self.attempts = 0
        self.sent: list[str] = []

    async def start(self) -> None:
        self.attempts += 1
        if self.state == "gone":
            raise PublishError("cannot connect to flaky: refused")

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        self.attempts += 1
        if self.state == "refusing":
            raise PublishError("flaky did not acknowledge in time")
        if self.state == "gone":
            raise ConnectionLost("not connected to flaky")
        self.sent.append(event_id)

    async def close(self) -> None:
        """Nothing to close."""


async def _until(check: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), WAIT_S)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


def _relay_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pes.relay" and r.levelno == level]


def _store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path / 'pes.db'}")
    _record(store, _response("d-1", BREACHING), _response("d-2", COMPLIANT))
    return store


def test_a_broker_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pes.relay")
    store = _store(tmp_path)
    broker = FlakyPublisher("refusing")
    relay = OutboxRelay(store.outbox, broker, interval_s=0.01)

    async def scenario() -> None:
        relay.start()
        try:
            # Refusing every round, then gone (reconnects back off): one outage.
            await _until(lambda: broker.attempts >= ROUNDS_DOWN, "the relay retried")
            broker.state = "gone"
            await _until(lambda: broker.attempts >= ROUNDS_DOWN + 5, "the relay reconnected")
            assert not relay.healthy and broker.sent == []
            broker.state = "up"
            await _until(lambda: len(broker.sent) == 2, "the events went out")
            assert relay.healthy
        finally:
            await relay.stop()

    asyncio.run(scenario())

    assert len(_relay_records(caplog, logging.WARNING)) == 1, caplog.text
    [down] = _relay_records(caplog, logging.WARNING)
    assert "did not acknowledge" in down and "events wait in the outbox" in down
    assert _relay_records(caplog, logging.ERROR) == []
    assert _relay_records(caplog, logging.INFO) == [
        "relaying events to flaky",
        "connected to flaky again; relaying events",
    ]
    assert store.outbox.counts() == (0, 2)


def test_a_database_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="pes.relay")
    store = _store(tmp_path)
    broker = FlakyPublisher("up")
    relay = OutboxRelay(store.outbox, broker, interval_s=0.01)
    claim = store.outbox.claim
    rounds = 0

    def unreachable(limit: int) -> Any:
        nonlocal rounds
        rounds += 1
        if rounds <= ROUNDS_DOWN:
            raise OperationalError("SELECT event_outbox", {}, Exception("connection refused"))
        return claim(limit)

    monkeypatch.setattr(store.outbox, "claim", unreachable)

    async def scenario() -> None:
        relay.start()
        try:
            await _until(lambda: len(broker.sent) == 2, "the events went out after the outage")
        finally:
            await relay.stop()

    asyncio.run(scenario())

    assert rounds > ROUNDS_DOWN
    errors = [r for r in caplog.records if r.name == "pes.relay" and r.levelno >= logging.WARNING]
    assert len(errors) == 1, caplog.text
    assert errors[0].exc_info is not None  # the traceback, once
    assert _relay_records(caplog, logging.INFO) == [
        "relaying events to flaky",
        "outbox relay rounds succeed again",
    ]

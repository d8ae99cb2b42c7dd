"""`pes monitor` against real NATS JetStream and a real database (SQLite, PostgreSQL).

The breach lifecycle runs the monitor in this process, one round at a time: a tick that
pushes a name over its cap opens one violation and one `policy_breach_detected` event, the
same update redelivered changes nothing, a second tick that keeps it over does not alert
again, a tick that brings it back cures it with one `policy_breach_cleared` event. The
crash test SIGKILLs a `pes monitor` process mid-stream, restarts it, and counts every
published update exactly once among the processed ids (on SQLite: it starts two processes).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.events import NatsPublisher
from api.http.app import create_app
from api.monitor import Book, ConsumerMismatch, Monitor, MonitorConfig, StoredSource
from api.settings import Settings
from api.store import Store, read_monitor_status
from api.store.tables import event_outbox, monitor_updates, policy_violations
from models import PolicyDefinition, Universe
from tests.api.test_events import _add_stream, _delete_stream, _jetstream_call, _stream_messages
from tests.services import nats_url
from tests.serving import REPO, log_tail

CAP = 0.10
WAIT_S = 60.0


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    """The monitor freezes the heap (api.heap): leave the test process's collector as found."""
    yield
    gc.unfreeze()


def _universe() -> Universe:
    return Universe.model_validate(
        {
            "id": "mon-universe",
            "instruments": [
                {"symbol": s, "price": 100.0, "sector": sector}
                for s, sector in (("AAA", "Tech"), ("BBB", "Tech"), ("CCC", "Energy"))
            ],
        }
    )


def _cap() -> PolicyDefinition:
    return PolicyDefinition.model_validate(
        {
            "policy_name": "single-name-cap",
            "policy_type": "POSITION_LIMIT",
            "description": "No name above 10% of NAV",
            "rules": {"constraints": [{"kind": "weight_bounds", "max": CAP}]},
        }
    )


def _seeded(url: str) -> Store:
    store = Store.open(url)
    store.universes.put(_universe(), actor="test")
    store.policies.create(_cap(), actor="test")
    return store


@pytest.fixture
def names() -> Iterator[tuple[str, str, str]]:
    """A stream, subject prefix and consumer of this test's own (deleted afterwards)."""
    url = nats_url()
    suffix = uuid.uuid4().hex[:12]
    stream, prefix = f"PES_TEST_STATE_{suffix}", f"pes.test.{suffix}.state"
    _add_stream(url, stream, f"{prefix}.>")  # as the monitor would: updates wait in it
    yield stream, prefix, "monitor"
    _delete_stream(url, stream)


async def _publish(url: str, *messages: tuple[str, dict[str, Any]]) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream()
        for subject, body in messages:
            await js.publish(subject, json.dumps(body).encode(), timeout=5)
    finally:
        await nc.close()


def _snapshot(prefix: str, uid: str, pid: str, aaa: float = 50) -> tuple[str, dict[str, Any]]:
    body = {
        "update_id": uid,
        "portfolio_id": pid,
        "cash": 93_000.0,
        "positions": {"AAA": aaa, "BBB": 10, "CCC": 10},
    }
    return f"{prefix}.positions.{pid}", body


def _tick(prefix: str, uid: str, price: float) -> tuple[str, dict[str, Any]]:
    return f"{prefix}.prices", {"update_id": uid, "prices": {"AAA": price}}


def _events(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(event_outbox.c.payload).order_by(event_outbox.c.id))
        return [dict(r.payload) for r in rows]


def _violations(store: Store) -> list[sa.Row[Any]]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(policy_violations).order_by(policy_violations.c.id)))


async def _rounds(monitor: Monitor, expected: int) -> None:
    """Run rounds until `expected` more messages were taken."""
    taken, deadline = 0, time.monotonic() + WAIT_S
    while taken < expected:
        assert time.monotonic() < deadline, f"only {taken} of {expected} messages came"
        taken += await monitor.step()


def test_a_breach_opens_once_is_not_realerted_and_is_cured(
    database_url: str, names: tuple[str, str, str]
) -> None:
    url = nats_url()
    stream, prefix, consumer = names
    store = _seeded(database_url)
    book = Book(
        [p.definition for p in store.policies.list()],
        _universe().instruments,
        store.portfolios.lineage,
    )
    config = MonitorConfig(url, stream, prefix, consumer, batch_max=50, batch_ms=5)
    events_stream, events_subject = f"{stream}_EVENTS", f"{prefix}.events"
    events_subject = events_subject.replace(".state.", ".out.")  # outside the updates' subjects
    monitor = Monitor(store, config, book, NatsPublisher(url, events_stream, events_subject))

    cured_ids: list[int] = []

    async def scenario() -> None:
        await monitor.start()
        try:
            # AAA is 5% of a NAV of 100,000: compliant.
            await _publish(url, _snapshot(prefix, "s1", "fund-a"))
            await _rounds(monitor, 1)
            assert _violations(store) == [] and _events(store) == []

            # AAA at 250: 12,500 of 107,500 = 11.6% > 10%.
            await _publish(url, _tick(prefix, "t1", 250.0))
            await _rounds(monitor, 1)
            opened = _violations(store)
            assert [(v.policy_name, v.subject, v.status, v.source) for v in opened] == [
                ("single-name-cap", "AAA", "open", "monitor")
            ]
            assert opened[0].validation_id is None
            assert opened[0].observed == pytest.approx(12_500 / 107_500)
            events = _events(store)
            assert [(e["event_type"], e["update_id"]) for e in events] == [
                ("policy_breach_detected", "t1")
            ]
            assert events[0]["violation"]["id"] == opened[0].id

            # The same update again (a redelivery): nothing changes.
            await _publish(url, _tick(prefix, "t1", 250.0))
            await _rounds(monitor, 1)
            assert _violations(store) == opened and len(_events(store)) == 1

            # Still over: no second alert, no second violation.
            await _publish(url, _tick(prefix, "t2", 260.0))
            await _rounds(monitor, 1)
            assert len(_violations(store)) == 1 and len(_events(store)) == 1

            # Back to 100: cured, one cleared event.
            await _publish(url, _tick(prefix, "t3", 100.0))
            await _rounds(monitor, 1)
            [cured] = _violations(store)
            assert (cured.id, cured.status, cured.resolved_by) == (opened[0].id, "cured", "monitor")
            cured_ids.append(cured.id)
            events = _events(store)
            assert [(e["event_type"], e["update_id"]) for e in events] == [
                ("policy_breach_detected", "t1"),
                ("policy_breach_cleared", "t3"),
            ]
            history = store.violations.history(cured.id)
            assert [(t.action, t.actor) for t in history] == [
                ("opened", "monitor"),
                ("cured", "monitor"),
            ]
        finally:
            await monitor.close()

    try:
        asyncio.run(scenario())
        relayed = _stream_messages(url, events_stream)
    finally:
        _delete_stream(url, events_stream)
    # The relay published both events to the broker (at the latest when the monitor stopped).
    assert [(m.payload["event_type"], m.payload["update_id"]) for m in relayed] == [
        ("policy_breach_detected", "t1"),
        ("policy_breach_cleared", "t3"),
    ]
    [status] = read_monitor_status(store.engine)
    store.engine.dispose()
    assert (status.consumer, status.state) == (consumer, "stopped")
    assert status.consumed == 5 and status.duplicates == 1 and status.rejected == 0
    assert (status.breaches_opened, status.breaches_cleared) == (1, 1)
    assert status.checks == 4 and status.portfolios == 1

    # A monitor violation (no validation behind it) reads like any other, on the API and /ui.
    app = create_app(Settings(database_url=database_url, events="none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        [violation_id] = cured_ids
        r = client.get(f"/api/v1/violations/{violation_id}")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["decision_id"]) == ("cured", "monitor:t1")
        page = client.get(f"/ui/violations/{violation_id}")
        assert page.status_code == 200 and "single-name-cap" in page.text


def test_the_monitor_cures_a_validations_violation_when_the_holdings_comply(
    database_url: str, names: tuple[str, str, str]
) -> None:
    # A validation found AAA over its cap (a passive breach, one violation); the monitor then
    # sees the holdings back under it: a later check, so the violation is cured, as a later
    # validation would cure it.
    url = nats_url()
    stream, prefix, consumer = names
    store = _seeded(database_url)
    request = {
        "decision": {
            "decision_id": "dec-over",
            "portfolio_id": "fund-a",
            "trades": [{"symbol": "BBB", "side": "BUY", "quantity": 1}],
        },
        "portfolio_state": {
            "portfolio_id": "fund-a",
            "cash": 80_000.0,
            "positions": [{"symbol": "AAA", "quantity": 150}, {"symbol": "BBB", "quantity": 50}],
            "instruments": [i.model_dump(mode="json") for i in _universe().instruments],
        },
        "mode": "validate",
    }
    app = create_app(Settings(database_url=database_url, events="none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/api/v1/validate", json=request)
        assert r.status_code == 200, r.text
    [found] = _violations(store)
    assert (found.policy_name, found.subject, found.status) == ("single-name-cap", "AAA", "open")
    assert found.source != "monitor" and found.validation_id is not None

    book = Book(
        [p.definition for p in store.policies.list()],
        _universe().instruments,
        store.portfolios.lineage,
    )
    config = MonitorConfig(url, stream, prefix, consumer, batch_max=50, batch_ms=5)
    monitor = Monitor(store, config, book, None)

    async def scenario() -> None:
        await monitor.start()
        try:
            await _publish(url, _snapshot(prefix, "s1", "fund-a"))  # AAA 5%: compliant
            await _rounds(monitor, 1)
        finally:
            await monitor.close()

    try:
        asyncio.run(scenario())
        [cured] = _violations(store)
        events = [e["event_type"] for e in _events(store) if "update_id" in e]
    finally:
        store.engine.dispose()  # no pooled connection left for the garbage collector
    assert (cured.id, cured.status, cured.resolved_by) == (found.id, "cured", "monitor")
    assert events == ["policy_breach_cleared"]


def _capped(cap: float) -> PolicyDefinition:
    body = _cap().model_dump(mode="json")
    body["rules"]["constraints"][0]["max"] = cap
    return PolicyDefinition.model_validate(body)


def test_a_policy_change_while_running_rechecks_every_portfolio_under_the_new_rules(
    database_url: str, names: tuple[str, str, str]
) -> None:
    url = nats_url()
    stream, prefix, consumer = names
    store = _seeded(database_url)
    # A stale book on purpose: start() reads the rules again from the store.
    book = Book([], _universe().instruments, store.portfolios.lineage)
    config = MonitorConfig(url, stream, prefix, consumer, batch_ms=5)
    monitor = Monitor(store, config, book, None, StoredSource(store, "mon-universe"))

    async def scenario() -> None:
        gc.unfreeze()
        await monitor.start()
        # The long-lived heap (imports, the book) is out of full collections before the
        # first round; a reload that rebuilds the book settles it again, and only then.
        assert monitor.heap.settlements == 1 and gc.get_freeze_count() > 0
        try:
            # AAA 5,000 of 100,000 = 5%: compliant under the 10% cap.
            await _publish(url, _snapshot(prefix, "s1", "fund-a"))
            await _rounds(monitor, 1)
            assert _violations(store) == []
            assert not monitor.reload()  # nothing changed

            # The cap tightened to 4% while the monitor runs: the reload finds the breach.
            store.policies.replace("single-name-cap", _capped(0.04), actor="test")
            assert monitor.reload()
            [opened] = _violations(store)
            assert (opened.policy_name, opened.subject, opened.status) == (
                "single-name-cap",
                "AAA",
                "open",
            )
            assert opened.limit_value == pytest.approx(0.04)
            assert opened.decision_id.startswith("monitor:reload:")
            assert not monitor.reload()
            assert monitor.heap.settlements == 2

            # Loosened again: the violation is cured by the next reload, not re-alerted.
            store.policies.replace("single-name-cap", _capped(0.10), actor="test")
            assert monitor.reload()
            [cured] = _violations(store)
            assert (cured.id, cured.status) == (opened.id, "cured")

            # A new universe version (AAA gone) is a change too: the holdings of a symbol
            # it lacks are no longer checked, and the monitor keeps running.
            smaller = _universe().model_dump(mode="json")
            smaller["instruments"] = smaller["instruments"][1:]
            store.universes.put(Universe.model_validate(smaller), actor="test")
            assert monitor.reload()
            assert "fund-a" not in monitor.book.holdings
        finally:
            await monitor.close()

    asyncio.run(scenario())
    events = [e["event_type"] for e in _events(store)]
    store.engine.dispose()
    assert events == ["policy_breach_detected", "policy_breach_cleared"]


def test_a_bad_update_is_rejected_and_counted(
    database_url: str, names: tuple[str, str, str]
) -> None:
    url = nats_url()
    stream, prefix, consumer = names
    store = _seeded(database_url)
    book = Book([_cap()], _universe().instruments, store.portfolios.lineage)
    # PES_GC_FREEZE=false: the heap is left to the collector as it is.
    config = MonitorConfig(url, stream, prefix, consumer, batch_ms=5, gc_freeze=False)
    monitor = Monitor(store, config, book, None)

    async def scenario() -> None:
        gc.unfreeze()
        await monitor.start()
        assert monitor.heap.settlements == 0 and gc.get_freeze_count() == 0
        try:
            await _publish(
                url,
                (f"{prefix}.prices", {"update_id": "p1", "prices": {"AAA": -1}}),
                (f"{prefix}.prices", {"update_id": "p2", "prices": {"ZZZ": 10}}),
                (f"{prefix}.other", {"update_id": "p3"}),
            )
            await _rounds(monitor, 3)
        finally:
            await monitor.close()

    asyncio.run(scenario())
    [status] = read_monitor_status(store.engine)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(monitor_updates.c.update_id, monitor_updates.c.kind))
        kinds = {r.update_id: r.kind for r in rows}
    store.engine.dispose()
    assert (status.consumed, status.rejected) == (3, 3)
    assert kinds == {"p1": "rejected", "p2": "rejected", "p3": "rejected"}


def test_update_ids_older_than_the_kept_hours_are_forgotten_a_bounded_chunk_at_a_time(
    database_url: str,
) -> None:
    from datetime import UTC, datetime, timedelta

    store = _seeded(database_url)
    now = datetime.now(UTC)
    ages_h = {"old-1": 30, "old-2": 26, "old-3": 25, "new-1": 23, "new-2": 0}
    with store.engine.begin() as conn:
        conn.execute(
            monitor_updates.insert(),
            [
                {
                    "update_id": uid,
                    "kind": "prices",
                    "portfolio_id": None,
                    "stream_seq": k,
                    "processed_at": now - timedelta(hours=age),
                }
                for k, (uid, age) in enumerate(ages_h.items())
            ],
        )
    book = Book([_cap()], _universe().instruments, store.portfolios.lineage)
    config = MonitorConfig("nats://127.0.0.1:1", keep_updates_h=24)
    monitor = Monitor(store, config, book, None)
    # Bounded: the two oldest first, then the rest of the old ones.
    assert monitor.state.prune_updates(now - timedelta(hours=24), limit=2) == 2
    assert monitor.state.processed(ages_h) == {"old-3", "new-1", "new-2"}
    assert monitor.prune() == 1
    assert monitor.state.processed(ages_h) == {"new-1", "new-2"}
    assert monitor.prune() == 0
    store.engine.dispose()


def test_a_pull_consumer_of_the_same_name_stops_the_start_with_what_to_do(
    tmp_path: Path, names: tuple[str, str, str]
) -> None:
    url = nats_url()
    stream, prefix, consumer = names
    store = _seeded(f"sqlite:///{tmp_path / 'pes.db'}")
    book = Book([_cap()], _universe().instruments, store.portfolios.lineage)
    monitor = Monitor(store, MonitorConfig(url, stream, prefix, consumer), book, None)

    async def scenario() -> None:
        import nats

        nc = await nats.connect(url, connect_timeout=5)
        try:  # what an earlier version made: a pull consumer
            await nc.jetstream().pull_subscribe(f"{prefix}.>", durable=consumer, stream=stream)
        finally:
            await nc.close()
        try:
            with pytest.raises(ConsumerMismatch, match=f"nats consumer rm {stream} {consumer}"):
                await monitor.start()
        finally:
            await monitor.close()

    asyncio.run(scenario())
    store.engine.dispose()


def _start_monitor(
    database_url: str, names: tuple[str, str, str], log: Path
) -> subprocess.Popen[bytes]:
    stream, prefix, consumer = names
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    command = [
        sys.executable, "-m", "api.cli", "-v", "monitor", "--database", database_url,
        "--nats", nats_url(), "--universe", "mon-universe", "--batch-max", "20",
        "--batch-ms", "5", "--stream", stream, "--prefix", prefix, "--consumer", consumer,
        "--events", "none", "--ack-wait", "2",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _processed(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(monitor_updates.c.update_id)).scalars())


def _wait_processed(store: Store, count: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(_processed(store)) < count:
        if proc.poll() is not None:
            pytest.fail(f"pes monitor exited with {proc.returncode}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{len(_processed(store))} of {count} processed:\n{log_tail(log)}")
        time.sleep(0.05)


def _ack_wait_s(names: tuple[str, str, str]) -> float:
    stream, _, consumer = names

    async def read(js: Any) -> float:
        info = await js.consumer_info(stream, consumer)
        return float(info.config.ack_wait)

    result: float = asyncio.run(_jetstream_call(nats_url(), read))
    return result


def test_sigkill_mid_stream_and_restart_lose_no_update_and_apply_none_twice(
    names: tuple[str, str, str], tmp_path: Path
) -> None:
    # SQLite only: two `pes monitor` starts take most of a minute on a loaded machine, and the
    # round's transaction is the same on PostgreSQL (tested above with both databases).
    url = nats_url()
    database_url = f"sqlite:///{tmp_path / 'pes.db'}"
    prefix = names[1]
    store = _seeded(database_url)
    log = tmp_path / "monitor.log"
    published = [f"u{i}" for i in range(300)]
    messages = [
        _snapshot(prefix, uid, f"fund-{i % 7}", aaa=50 + (i % 5) * 20)
        if i % 3
        else _tick(prefix, uid, 100.0 + (i % 11) * 10)
        for i, uid in enumerate(published)
    ]
    proc = _start_monitor(database_url, names, log)
    try:
        asyncio.run(_publish(url, *messages[:150]))
        _wait_processed(store, 40, proc, log)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: some rounds done, others in flight
        proc.wait(timeout=20)
        asyncio.run(_publish(url, *messages[150:]))
        before = len(_processed(store))
        assert before < len(published)

        proc = _start_monitor(database_url, names, log)
        _wait_processed(store, len(published), proc, log)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
    processed = _processed(store)
    assert _ack_wait_s(names) == 2.0  # the consumer the option made: redelivery within seconds
    [status] = read_monitor_status(store.engine)
    violations = _violations(store)
    store.engine.dispose()
    assert sorted(processed) == sorted(published)  # each exactly once (a primary key)
    assert status.state == "stopped" and status.rejected == 0
    # Every breach the book is in now is open exactly once, and every open one is breached.
    live = [v for v in violations if v.status == "open"]
    assert len({(v.portfolio_id, v.subject) for v in live}) == len(live)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--batch-max", "0"], "--batch-max: Input should be greater than or equal to 1"),
        (["--batch-ms", "-5"], "--batch-ms: Input should be greater than 0"),
        (["--ack-wait", "0.5"], "--ack-wait: Input should be greater than or equal to 1"),
        (["--keep-updates", "0.5"], "--keep-updates: Input should be greater than or equal to 1"),
        (["--prefix", "a..b"], "--prefix: String should match pattern"),
        ([], "--universe: required"),
        (["--universe", "nowhere"], "--universe: "),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    options: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    database = f"sqlite:///{tmp_path / 'pes.db'}"
    assert main(["monitor", "--database", database, *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pes monitor: ") and named in err[0], err


def test_no_stored_policy_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main

    database = f"sqlite:///{tmp_path / 'pes.db'}"
    store = Store.open(database)
    store.universes.put(_universe(), actor="test")
    store.engine.dispose()
    assert main(["monitor", "--database", database, "--universe", "mon-universe"]) == 2
    assert "no enabled policy is stored" in capsys.readouterr().err


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.PES_STATE.pes-monitor.1.42.7.1700000000000000000.13",
        "$JS.ACK._.ACCHASH.PES_STATE.pes-monitor.2.42.7.1700000000000000000.13.rand",
    ],
)
def test_the_stream_position_is_the_client_librarys_metadata(reply: str) -> None:
    from nats.aio.msg import Msg

    from api.monitor.updates import stream_position as _stream_position

    msg = Msg(_client=None, subject="pes.state.prices", reply=reply)  # type: ignore[arg-type]
    meta = msg.metadata
    assert _stream_position(msg) == (meta.sequence.stream, meta.num_pending) == (42, 13)

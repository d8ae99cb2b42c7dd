"""Several workers, one outbox: each event reaches the broker once, in commit order.

Two real OS processes share one database (a PostgreSQL schema through `PGOPTIONS`, or one
SQLite file), each with an outbox relay publishing to NATS JetStream. The workers publish
*without* the `Nats-Msg-Id` header, so JetStream's duplicate window cannot hide a second
publish: every message in the stream is counted by the `event_id` in its payload. The
workers start together (a barrier file) and publish slowly enough that their rounds overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from api.store import Store
from api.store.tables import event_outbox
from tests.api.test_events import _add_stream, _delete_stream, _names, _stream_messages
from tests.services import nats_url

REPO = Path(__file__).resolve().parents[2]
EVENTS = 120
WORKERS = 2
WAIT_S = 90.0
WORKER = """
import asyncio, json, sys, time
from pathlib import Path
from api.events import NatsPublisher, OutboxRelay
from api.store import Store

database, nats, stream, subject, go = sys.argv[1:]


class Undeduplicated(NatsPublisher):
    async def publish(self, event_id, payload):
        await asyncio.sleep(0.002)  # widen every round, so the workers' rounds overlap
        await self._js.publish(subject, json.dumps(payload).encode(), timeout=5)


async def main():
    store = Store.open(database)
    publisher = Undeduplicated(nats, stream, subject)
    await publisher.start()
    relay = OutboxRelay(store.outbox, publisher, batch=10)
    print("ready", flush=True)
    while not Path(go).exists():
        await asyncio.sleep(0.01)
    deadline = time.monotonic() + 60
    while store.outbox.counts()[0] and time.monotonic() < deadline:
        await relay.relay_once()
    await publisher.close()
    print("published", relay.published, flush=True)


asyncio.run(main())
"""


def _insert_events(database_url: str, count: int) -> list[str]:
    store = Store.open(database_url)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": event_id,
            "event_type": "policy_validation_completed",
            "payload": {"event_id": event_id, "n": n},
            "created_at": now,
            "attempts": 0,
        }
        for n, event_id in enumerate(ids)
    ]
    with store.engine.begin() as conn:
        conn.execute(event_outbox.insert(), rows)
    store.engine.dispose()
    return ids


def _start_workers(args: list[str]) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]


def test_two_worker_processes_publish_each_event_once_in_order(
    database_url: str, tmp_path: Path
) -> None:
    url = nats_url()
    stream, subject = _names()
    _add_stream(url, stream, subject)
    go = tmp_path / "go"
    ids = _insert_events(database_url, EVENTS)
    workers = _start_workers([database_url, url, stream, subject, str(go)])
    try:
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()  # bounded: the worker exits on any error
            assert line.strip() == "ready", worker.communicate(timeout=WAIT_S)[1][-2000:]
        go.touch()
        outputs = [worker.communicate(timeout=WAIT_S) for worker in workers]
        for worker, (_, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err[-2000:]

        published = [int(out.split()[-1]) for out, _ in outputs]
        messages = _stream_messages(url, stream)
        counts = Counter(m.payload["event_id"] for m in messages)
        assert {event_id: n for event_id, n in counts.items() if n != 1} == {}
        assert set(counts) == set(ids)
        assert sum(published) == EVENTS
        assert [m.payload["event_id"] for m in messages] == ids, "commit order"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=WAIT_S)
        _delete_stream(url, stream)


def test_a_round_claimed_elsewhere_is_skipped(database_url: str) -> None:
    """In one process too: while one claim is held, a second claim gets nothing."""
    store = Store.open(database_url)
    _insert_events(database_url, 3)
    try:
        first = store.outbox.claim(10)
        assert first is not None and len(first.events) == 3
        assert store.outbox.claim(10) is None
        first.mark_published([e.id for e in first.events[:2]])
        first.release()
        again = store.outbox.claim(10)
        assert again is not None and [e.id for e in again.events] == [first.events[2].id]
        again.release()
        assert store.outbox.counts() == (1, 2)
    finally:
        store.engine.dispose()

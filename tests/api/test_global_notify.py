"""The global policy's PostgreSQL listener (`api.global_notify`), on its own.

Each test gives the worker's cache a 60 s refresh, so that only a notification (or the
listener's catch-up when it (re)connects) can explain a new version; the cache is looked
at with `peek`, which never asks the database. The PostgreSQL tests run in a schema of
their own (`database_url`), so other services on the same database, which share the
channel, neither disturb them nor are disturbed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.pool import NullPool

from api.global_controls import GlobalPolicyCache
from api.global_notify import GlobalPolicyListener
from api.http.app import create_app
from api.settings import Settings
from api.store import Store
from api.store.db import listen_connector
from api.store.global_policy import CHANNEL, GlobalPolicyStore, content_of
from models.enums import RiskMode
from tests.api.conftest import services_of

POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
LONG_REFRESH_S = 60.0
BOUND_S = 1.0


def _until(condition: Callable[[], bool], within_s: float, what: str) -> float:
    """Seconds until `condition()` holds, failing after `within_s`."""
    start = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - start
        assert elapsed < within_s, f"{what}: not after {elapsed:.2f} s"
        time.sleep(0.01)
    return time.monotonic() - start


def _version(cache: GlobalPolicyCache) -> int | None:
    stored, _ = cache.peek()
    return None if stored is None else stored.version


def _set(store: Store, **fields: Any) -> int:
    changed, stored = store.global_policy.change(
        lambda p: p.model_copy(update=fields), actor="test"
    )
    assert changed
    return stored.version


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one schema: a worker's, and another worker's that writes."""
    mine, theirs = Store.open(database_url), Store.open(database_url)
    try:
        yield mine, theirs
    finally:
        mine.engine.dispose()
        theirs.engine.dispose()


@contextmanager
def _listening(
    cache: GlobalPolicyCache, connect: Callable[[], psycopg.Connection[Any]]
) -> Iterator[GlobalPolicyListener]:
    """A started listener, listening; stopped (its thread ended) on the way out."""
    listener = GlobalPolicyListener(cache, connect)
    listener.start()
    try:
        _until(lambda: listener.listening, 10.0, "listening")
        yield listener
    finally:
        listener.stop()
        thread = listener._thread
        assert thread is not None and not thread.is_alive()


@POSTGRES
def test_a_committed_version_is_applied_on_its_notification(
    stores: tuple[Store, Store], database_url: str
) -> None:
    mine, theirs = stores
    cache = GlobalPolicyCache(mine.global_policy, LONG_REFRESH_S)
    assert cache.current().version == 1
    with _listening(cache, listen_connector(mine.engine)) as listener:
        version = _set(theirs, max_positions=12)
        delay = _until(lambda: _version(cache) == version, BOUND_S, "version 2 applied")
        assert cache.current().policy.max_positions == 12  # the copy, no poll needed
        assert listener.notifications == 1 and cache.notified_count == 1
        # Another schema's versions (the channel is the database's) change nothing.
        admin = sa.create_engine(database_url, poolclass=NullPool)
        with admin.begin() as conn:
            other = json.dumps({"schema": f"pes_elsewhere_{uuid.uuid4().hex}", "version": 99})
            conn.execute(sa.select(sa.func.pg_notify(CHANNEL, other)))
        admin.dispose()
        # Nor do a payload that is not the store's or a version already applied (handed to
        # the listener directly: other test runs on this database listen on the channel).
        with theirs.engine.connect() as conn:
            schema = str(conn.execute(sa.text("SELECT current_schema()")).scalar())
        for payload in ("garbage", "[]", json.dumps({"schema": schema, "version": version})):
            listener._received(payload, schema)
        later = _set(theirs, max_positions=13)
        _until(lambda: _version(cache) == later, BOUND_S, "version 3 applied")
        assert listener.notifications == 3 and cache.notified_count == 2
    print(f"\nnotified version applied after {delay * 1000:.1f} ms")


@POSTGRES
def test_a_rolled_back_version_notifies_nothing(stores: tuple[Store, Store]) -> None:
    """The NOTIFY is sent in the writer's transaction: a version written and then rolled
    back is never announced; the next committed one is."""
    mine, theirs = stores
    cache = GlobalPolicyCache(mine.global_policy, LONG_REFRESH_S)
    current = cache.current()
    content = {**content_of(current.policy), "max_positions": 99}
    with _listening(cache, listen_connector(mine.engine)) as listener:
        with theirs.engine.connect() as conn:
            GlobalPolicyStore._write(conn, content, [], current.version, "update", "test")
            conn.rollback()
        time.sleep(0.5)
        assert listener.notifications == 0 and _version(cache) == 1
        version = _set(theirs, max_positions=8)
        _until(lambda: _version(cache) == version, BOUND_S, "the committed version applied")
        assert listener.notifications == 1


@POSTGRES
def test_a_lost_connection_reconnects_and_catches_up(stores: tuple[Store, Store]) -> None:
    """The listener's backend is ended; a change made meanwhile is not lost: the listener
    reconnects (backoff from 0.5 s) and reads the latest version as it listens again."""
    mine, theirs = stores
    cache = GlobalPolicyCache(mine.global_policy, LONG_REFRESH_S)
    cache.current()
    opened: list[int] = []
    connect = listen_connector(mine.engine)

    def recorded() -> psycopg.Connection[Any]:
        conn = connect()
        opened.append(conn.info.backend_pid)
        return conn

    with _listening(cache, recorded) as listener:
        with theirs.engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_terminate_backend(opened[0])))
        version = _set(theirs, risk_mode=RiskMode.DEFENSIVE)
        _until(lambda: _version(cache) == version, 10.0, "the missed version read")
        assert listener.connections == 2 and listener.listening
        assert cache.current().policy.risk_mode.value == "DEFENSIVE"


def test_a_listener_that_cannot_connect_never_disturbs_reads(tmp_path: Any) -> None:
    """No database to listen to: the thread keeps retrying with backoff, reads go on
    polling as on SQLite, and it stops at once when asked."""
    store = Store.open(f"sqlite:///{tmp_path / 'pes.db'}")
    cache = GlobalPolicyCache(store.global_policy, 0.0)
    attempts = threading.Semaphore(0)

    def refused() -> psycopg.Connection[Any]:
        attempts.release()
        raise psycopg.OperationalError("connection refused")

    listener = GlobalPolicyListener(cache, refused)
    listener.start()
    try:
        assert attempts.acquire(timeout=5) and attempts.acquire(timeout=5)  # retried
        assert not listener.listening and listener.connections == 0
        assert cache.current().version == 1
        _set(store, max_positions=7)
        assert cache.current().version == 2  # polling: the safety net
    finally:
        start = time.monotonic()
        listener.stop()
        assert listener._thread is not None and not listener._thread.is_alive()
        assert time.monotonic() - start < 2.0
        store.engine.dispose()


def test_the_app_listens_on_postgresql_only_and_stops_on_shutdown(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, events="none"))
    with TestClient(app) as client:
        listener = services_of(client).global_listener
        if database_url.startswith("sqlite"):
            assert listener is None
            return
        assert listener is not None
        _until(lambda: listener.listening, 10.0, "listening")
        body = client.get("/api/policy").json()
        r = client.patch("/api/policy", json={"max_positions": 9})
        assert r.status_code == 200 and r.json()["version"] == body["version"] + 1
    assert listener._thread is not None and not listener._thread.is_alive()
    assert not listener.listening


@POSTGRES
def test_listening_can_be_turned_off(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, events="none", global_policy_listen=False))
    with TestClient(app) as client:
        assert services_of(client).global_listener is None

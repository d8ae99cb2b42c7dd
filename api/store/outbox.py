"""The event outbox: committed events waiting to be relayed to the broker.

Several service processes share one database, each with a relay. A relay round first
*claims* the outbox; only one round at a time, in any process, holds the claim, so an event
is published by one worker (and in commit order), never by every worker at once:

- PostgreSQL: the round is one transaction that starts with ``pg_try_advisory_xact_lock``
  keyed by the database and schema; a worker that does not get it skips the round. Its marks
  commit with the round, and the lock goes with the commit (or with a dead connection).
- SQLite: an exclusive ``flock`` on a file beside the database, tried without waiting. Not
  ``BEGIN IMMEDIATE``: the round publishes to the broker while it holds the claim, and a
  write lock held that long would stall every validation's commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from api.store.db import lock_file, schema_key, sqlite_file, write_turn
from api.store.tables import event_outbox

__all__ = ["OutboxClaim", "OutboxEvent", "OutboxStore"]

RELAY_LOCK = 0x5E5_0002
"""First key of the relay rounds' advisory lock (the second is `schema_key`)."""


@dataclass(frozen=True)
class OutboxEvent:
    """One pending event."""

    id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int


def _pending(conn: Connection, limit: int) -> list[OutboxEvent]:
    t = event_outbox
    query = (
        sa.select(t.c.id, t.c.event_id, t.c.event_type, t.c.payload, t.c.attempts)
        .where(t.c.published_at.is_(None))
        .order_by(t.c.id)
        .limit(limit)
    )
    return [
        OutboxEvent(r.id, r.event_id, r.event_type, r.payload, r.attempts)
        for r in conn.execute(query)
    ]


def _mark_published(conn: Connection, ids: list[int]) -> None:
    conn.execute(
        event_outbox.update()
        .where(event_outbox.c.id.in_(ids))
        .values(
            published_at=datetime.now(UTC),
            attempts=event_outbox.c.attempts + 1,
            last_error=None,
        )
    )


def _mark_failed(conn: Connection, event_id: int, error: str) -> None:
    conn.execute(
        event_outbox.update()
        .where(event_outbox.c.id == event_id)
        .values(attempts=event_outbox.c.attempts + 1, last_error=error[:2000])
    )


class OutboxClaim:
    """One relay round's exclusive hold on the outbox: its pending events and their marks.

    On PostgreSQL the marks are written in the round's transaction and commit on `release`;
    elsewhere each mark commits at once. Call `release` exactly once (from any thread).
    """

    def __init__(
        self, engine: Engine, events: list[OutboxEvent], hold: ExitStack, conn: Connection | None
    ) -> None:
        self.engine = engine
        self.events = events
        self._hold = hold
        self._conn = conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._conn is not None:  # the round's own transaction: committed on `release`
            yield self._conn
            return
        with write_turn(self.engine), self.engine.begin() as conn:
            yield conn

    def mark_published(self, ids: list[int]) -> None:
        """Record that these events reached the broker."""
        if ids:
            with self._write() as conn:
                _mark_published(conn, ids)

    def mark_failed(self, event_id: int, error: str) -> None:
        """Record a failed publish attempt; the event stays pending."""
        with self._write() as conn:
            _mark_failed(conn, event_id, error)

    def release(self) -> None:
        """Commit the round's marks (PostgreSQL) and let the next round claim the outbox."""
        self._hold.close()


class OutboxStore:
    """Reads pending events in commit order and marks them published."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pending(self, limit: int) -> list[OutboxEvent]:
        """The oldest unpublished events."""
        with self.engine.connect() as conn:
            return _pending(conn, limit)

    def claim(self, limit: int) -> OutboxClaim | None:
        """Claim the outbox for one relay round: None when another round holds it."""
        stack = ExitStack()
        try:
            conn, got, events = self._claim(stack, limit)
        except BaseException:
            stack.close()
            raise
        if not got:
            stack.close()
            return None
        return OutboxClaim(self.engine, events, stack, conn)

    def _claim(
        self, stack: ExitStack, limit: int
    ) -> tuple[Connection | None, bool, list[OutboxEvent]]:
        if self.engine.dialect.name == "postgresql":
            conn = stack.enter_context(self.engine.connect())
            stack.enter_context(conn.begin())  # committed when the claim is released
            got = conn.execute(
                sa.select(sa.func.pg_try_advisory_xact_lock(RELAY_LOCK, schema_key()))
            ).scalar_one()
            return conn, bool(got), _pending(conn, limit) if got else []
        path = sqlite_file(self.engine)
        if path is not None:
            lock = path.with_name(path.name + ".relay-lock")
            if not stack.enter_context(lock_file(lock, wait_s=0)):
                return None, False, []
        return None, True, self.pending(limit)

    def mark_published(self, ids: list[int]) -> None:
        """Record that these events reached the broker."""
        if ids:
            with write_turn(self.engine), self.engine.begin() as conn:
                _mark_published(conn, ids)

    def mark_failed(self, event_id: int, error: str) -> None:
        """Record a failed publish attempt; the event stays pending."""
        with write_turn(self.engine), self.engine.begin() as conn:
            _mark_failed(conn, event_id, error)

    def counts(self) -> tuple[int, int]:
        """(pending, published) event counts."""
        t = event_outbox
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.published_at.is_(None))
            ).scalar_one()
            total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        return int(pending), int(total) - int(pending)

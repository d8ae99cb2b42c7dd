"""The event outbox: committed events waiting to be relayed to the broker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from api.store.tables import event_outbox

__all__ = ["OutboxEvent", "OutboxStore"]


@dataclass(frozen=True)
class OutboxEvent:
    """One pending event."""

    id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int


class OutboxStore:
    """Reads pending events in commit order and marks them published."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pending(self, limit: int) -> list[OutboxEvent]:
        """The oldest unpublished events."""
        t = event_outbox
        query = (
            sa.select(t.c.id, t.c.event_id, t.c.event_type, t.c.payload, t.c.attempts)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                OutboxEvent(r.id, r.event_id, r.event_type, r.payload, r.attempts)
                for r in conn.execute(query)
            ]

    def mark_published(self, ids: list[int]) -> None:
        """Record that these events reached the broker."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                event_outbox.update()
                .where(event_outbox.c.id.in_(ids))
                .values(
                    published_at=datetime.now(UTC),
                    attempts=event_outbox.c.attempts + 1,
                    last_error=None,
                )
            )

    def mark_failed(self, event_id: int, error: str) -> None:
        """Record a failed publish attempt; the event stays pending."""
        with self.engine.begin() as conn:
            conn.execute(
                event_outbox.update()
                .where(event_outbox.c.id == event_id)
                .values(attempts=event_outbox.c.attempts + 1, last_error=error[:2000])
            )

    def counts(self) -> tuple[int, int]:
        """(pending, published) event counts."""
        t = event_outbox
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.published_at.is_(None))
            ).scalar_one()
            total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        return int(pending), int(total) - int(pending)

"""The outbox relay: publishes committed events in order, at least once, surviving restarts.

Events are written to the outbox in the same transaction as their validation. The relay
reads pending events oldest first, publishes each and marks it published; an event whose
publish fails stays pending and is retried next round (later events wait, preserving
order). A crash between publish and mark re-sends the event after restart: delivery is at
least once, and `event_id` lets the broker (JetStream) or consumers drop the duplicate.
"""

from __future__ import annotations

import asyncio
import logging

from api.events.publishers import Publisher, PublishError
from api.store import OutboxStore

__all__ = ["OutboxRelay"]

log = logging.getLogger("pes.relay")


class OutboxRelay:
    """Moves events from the outbox to a publisher."""

    def __init__(
        self,
        outbox: OutboxStore,
        publisher: Publisher,
        *,
        batch: int = 100,
        interval_s: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.batch = batch
        self.interval_s = interval_s
        self.published = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        """Publish what is pending now; returns how many events were published."""
        events = await asyncio.to_thread(self.outbox.pending, self.batch)
        done: list[int] = []
        try:
            for event in events:
                try:
                    await self.publisher.publish(event.event_id, event.payload)
                except PublishError as exc:
                    self.failures += 1
                    log.warning(
                        "event %s not published (attempt %d): %s",
                        event.event_id,
                        event.attempts + 1,
                        exc,
                    )
                    await asyncio.to_thread(self.outbox.mark_failed, event.id, str(exc))
                    break
                done.append(event.id)
        finally:
            await asyncio.to_thread(self.outbox.mark_published, done)
        self.published += len(done)
        return len(done)

    def nudge(self) -> None:
        """Relay soon: a validation was just committed."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled."""
        while True:
            try:
                sent = await self.relay_once()
            except Exception:  # the database may be briefly unreachable: keep going
                log.exception("outbox relay round failed")
                sent = 0
            if sent < self.batch:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
                except TimeoutError:
                    pass

    def start(self) -> None:
        """Run in the background of the current event loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop the background loop (pending events stay in the outbox)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

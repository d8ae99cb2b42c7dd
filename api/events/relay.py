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

from api.events.publishers import ConnectionLost, Publisher, PublishError
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
        stop_grace_s: float = 5.0,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.batch = batch
        self.interval_s = interval_s
        self.stop_grace_s = stop_grace_s
        self.published = 0
        self.failures = 0
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False

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
                    self.connected = not isinstance(exc, ConnectionLost)
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
        """Relay soon: a validation was just committed (callable from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _connect(self) -> bool:
        try:
            await self.publisher.start()
        except PublishError as exc:
            log.warning("%s; events wait in the outbox, retrying", exc)
            return False
        self.connected = True
        log.info("relaying events to %s", self.publisher.name)
        return True

    async def run(self) -> None:
        """Connect (retrying while the broker is down) and relay until cancelled."""
        backoff = self.interval_s
        while not self._stopping:
            # Cleared before the round, so a nudge that arrives during it is not lost.
            self._wake.clear()
            sent = 0
            if self.connected or await self._connect():
                backoff = self.interval_s
                try:
                    sent = await self.relay_once()
                except Exception:  # the database may be briefly unreachable: keep going
                    log.exception("outbox relay round failed")
            else:
                backoff = min(backoff * 2, 30.0)
            if sent < self.batch and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)
                except TimeoutError:
                    pass

    def start(self) -> None:
        """Run in the background of the current event loop."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop the background loop; pending events stay in the outbox.

        The round in flight finishes first, so an event already handed to the publisher
        is also marked published (cancelling mid-round would leave it pending and send it
        again after a restart). A round stuck on the broker is cancelled after
        `stop_grace_s`; its events stay pending and are re-sent: at least once still holds.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(task, timeout=self.stop_grace_s)
        except TimeoutError:
            log.warning(
                "outbox relay round still running after %.1f s: cancelled", self.stop_grace_s
            )
        finally:
            self._stopping = False

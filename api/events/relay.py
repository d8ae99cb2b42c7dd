"""The outbox relay: publishes committed events in order, at least once, surviving restarts.

Events are written to the outbox in the same transaction as their validation. Each round
the relay claims the outbox (`OutboxStore.claim`: one round at a time across every worker
process sharing the database; a worker that finds it claimed skips the round), reads
pending events oldest first, publishes each and marks it published; an event whose publish
fails stays pending and is retried next round (later events wait, preserving order).

Guarantees, with any number of workers:

- **Order**: one round at a time publishes, oldest first, and stops at the first failure.
  A publisher with `publish_many` (NATS) sends a window of up to `PUBLISH_WINDOW` events in
  order on one connection and then waits for their acknowledgements together (one round
  trip a window instead of one an event); when one fails, the later ones of its window are
  not marked and go again with it next round (JetStream drops those it already took as
  duplicates by `event_id`), so only a failure can let a later event reach the broker
  before an earlier one.
- **At least once**: a crash (or a lost database) between publish and mark re-sends the
  event after restart; on PostgreSQL the round's marks commit together at its end, so a
  failed commit re-sends the whole round. `event_id` lets the broker (JetStream's
  duplicate window) or consumers drop the duplicate.
- **Once per worker count**: two workers never publish the same pending event in
  overlapping rounds; the claim, not the broker's de-duplication, ensures it.

An outage (broker or database) is logged when it starts and when it ends, not every round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from api.events.publishers import ConnectionLost, Publisher, PublishError
from api.store import OutboxStore

__all__ = ["OutboxRelay"]

log = logging.getLogger("pes.relay")

PUBLISH_WINDOW = 256
"""Events a publisher with `publish_many` has in flight at once."""


async def _outcome(
    publisher: Publisher, event_id: str, payload: dict[str, Any]
) -> PublishError | None:
    try:
        await publisher.publish(event_id, payload)
    except PublishError as exc:
        return exc
    return None


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
        self.broker_ok = True
        self.rounds_ok = True
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def healthy(self) -> bool:
        """Connected to the broker, which accepted the last event sent."""
        return self.connected and self.broker_ok

    def _broker_down(self, what: str) -> None:
        if self.broker_ok:
            log.warning("%s; events wait in the outbox until %s is back", what, self.publisher.name)
        else:
            log.debug("%s", what)
        self.broker_ok = False

    def _broker_up(self) -> None:
        if not self.broker_ok:
            log.info("%s accepts events again", self.publisher.name)
        self.broker_ok = True

    def _round_failed(self) -> None:
        if self.rounds_ok:
            # Once per outage, with its traceback; the rounds go on, quietly, until one works.
            log.exception("outbox relay round failed (database unreachable?); retrying")
        else:
            log.debug("outbox relay round failed again", exc_info=True)
        self.rounds_ok = False

    def _round_succeeded(self) -> None:
        if not self.rounds_ok:
            log.info("outbox relay rounds succeed again")
        self.rounds_ok = True

    async def relay_once(self) -> int:
        """Publish what is pending now; returns how many events were published.

        Returns 0 without publishing when another worker's round holds the outbox.
        """
        claim = await asyncio.to_thread(self.outbox.claim, self.batch)
        if claim is None:
            return 0
        done: list[int] = []
        many = getattr(self.publisher, "publish_many", None)
        window = PUBLISH_WINDOW if many is not None else 1
        try:
            for start in range(0, len(claim.events), window):
                part = claim.events[start : start + window]
                if many is not None:
                    outcomes = await many([(e.event_id, e.payload) for e in part])
                else:
                    outcomes = [await _outcome(self.publisher, e.event_id, e.payload) for e in part]
                failed = next((k for k, o in enumerate(outcomes) if o is not None), None)
                done.extend(e.id for e in part[:failed])
                if failed is None:
                    self._broker_up()
                    continue
                event, exc = part[failed], outcomes[failed]
                assert exc is not None
                self.failures += 1
                self.connected = not isinstance(exc, ConnectionLost)
                self._broker_down(
                    f"event {event.event_id} not published (attempt {event.attempts + 1}): {exc}"
                )
                await asyncio.to_thread(claim.mark_failed, event.id, str(exc))
                break
        finally:
            try:
                await asyncio.to_thread(claim.mark_published, done)
            finally:
                # Also when cancelled: the thread runs to its end and lets the claim go.
                await asyncio.to_thread(claim.release)
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
            self._broker_down(f"{exc}")
            return False
        self.connected = True
        if self.broker_ok:
            log.info("relaying events to %s", self.publisher.name)
        else:
            log.info("connected to %s again; relaying events", self.publisher.name)
        self.broker_ok = True
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
                    self._round_failed()
                else:
                    self._round_succeeded()
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

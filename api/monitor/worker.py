"""The monitor's loop: fetch a micro-batch, apply it, re-check, commit, then acknowledge.

One round:

1. take up to `batch_max` messages delivered by the durable push consumer (`Inbox`),
   waiting at most `batch_ms` after the first (or for the first);
2. parse each (a message that is not an update is logged, recorded as rejected when it
   has an id, and acknowledged: it can never apply); drop the updates whose id is already
   in `monitor_updates` (duplicates: redeliveries after a crash or a lost ack);
3. apply the rest to the book in stream order (snapshots replace a portfolio's holdings,
   ticks set prices; an older stream sequence never overwrites a newer one) and re-check
   every portfolio they touched, grouped by policy set, in one batch per group;
4. commit the batch's effect in one transaction (`MonitorStore.commit`): update ids,
   positions, prices, violations opened and cured with their outbox events, status;
5. acknowledge every message of the batch, and nudge the outbox relay.

A crash before 4 leaves nothing behind and the messages are delivered again; a crash
between 4 and 5 redelivers updates that are now duplicates. If the commit fails the
messages are handed back (`nak`) and the round is retried; applying an update twice to
the book is harmless (snapshots and prices replace).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.events import OutboxRelay, Publisher
from api.heap import Heap
from api.monitor.book import Book, Holding
from api.monitor.consumer import Inbox, subscribe
from api.monitor.source import StoredSource
from api.monitor.summary import RoundSummary
from api.monitor.updates import BadUpdate, PositionSnapshot, parse, stream_position, update_id_of
from api.store import NotFound, Store
from api.store.monitor import BatchEffect, MonitorStore

__all__ = ["Monitor", "MonitorConfig"]

log = logging.getLogger("pes.monitor")

HEARTBEAT_S = 1.0
"""The status row is written at least this often while the monitor runs."""
ACK_WAIT_S = 60.0
"""JetStream redelivers a message not acknowledged within this (a round takes far less)."""
PRUNE_EVERY_S = 10.0
"""How often the ids older than `keep_updates_h` are deleted (a bounded amount each time)."""
PRUNE_CHUNK = 20_000
PRUNE_CHUNKS = 20
"""At most PRUNE_CHUNK * PRUNE_CHUNKS ids a time, one transaction a chunk: more than 10,000
updates/s bring in ten seconds."""


@dataclass(frozen=True)
class MonitorConfig:
    """Where the monitor reads, how it batches, and where its events go."""

    nats_url: str
    stream: str = "PES_STATE"
    prefix: str = "pes.state"
    consumer: str = "pes-monitor"
    batch_max: int = 1000
    batch_ms: float = 20.0
    max_ack_pending: int = 20_000
    """Most messages delivered and not yet acknowledged: bounds the monitor's inbox (the
    rest wait in the stream)."""
    ack_wait_s: float = ACK_WAIT_S
    keep_updates_h: float = 24.0
    reload_s: float = 5.0
    """How often the stored policies, tree and universe are compared with the book's."""
    gc_freeze: bool = True
    """Freeze the long-lived heap (imports, the book) out of full collections after each
    build of the book (`api.heap`): without it a full collection stretched a round of 20 ms
    to 150 to 500 ms every few seconds at 10,000 updates/s."""


@dataclass
class _Round:
    """One micro-batch being applied."""

    effect: BatchEffect
    touched: dict[str, str]
    counts: dict[str, int]


class Monitor:
    """Consumes state updates and keeps the violations of the holdings (module docstring)."""

    def __init__(
        self,
        store: Store,
        config: MonitorConfig,
        book: Book,
        publisher: Publisher | None,
        source: StoredSource | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.book = book
        self.source = source
        self._fingerprint: Hashable | None = None
        self.state = MonitorStore(store.engine, config.consumer)
        self.relay = (
            None
            if publisher is None
            else OutboxRelay(store.outbox, publisher, batch=1000, interval_s=0.5)
        )
        self.lag = 0
        self.rounds = 0
        self._nc: Any = None
        self._sub: Any = None
        self._inbox = Inbox()
        self._summary = RoundSummary()
        self._beat = time.monotonic()
        self._pruned = -PRUNE_EVERY_S  # the first round prunes
        self._compared = time.monotonic()
        self._books = 0
        """How many times the book was built: what the heap watches."""
        self.heap = Heap(lambda: self._books, enabled=config.gc_freeze)

    # -- start and stop ------------------------------------------------------------------------

    def load(self) -> None:
        """The stored positions, prices and live violations into the book.

        With a source, the book's rules are read again first, after the fingerprint they
        will be compared with (a change in between is then seen at the first comparison).
        """
        if self.source is not None:
            self._fingerprint = self.source.fingerprint()
            rules = self.source.rules()
            self.book = Book(rules.policies, rules.instruments, self.book.lineage)
        positions, prices = self.state.load()
        for pid, (seq, cash, quantities) in positions.items():
            try:
                self.book.set_holding(pid, Holding(seq, cash, quantities))
            except ValueError as exc:  # the universe changed since: it cannot be checked
                log.warning("stored holdings of %r not monitored: %s", pid, exc)
        for symbol, (price, seq) in prices.items():
            self.book.set_price(symbol, price, seq)
        self.book.live = self.state.live()
        self._books += 1
        log.info(
            "monitor state: %d portfolios, %d prices, %d portfolios with live violations",
            len(positions),
            len(prices),
            len(self.book.live),
        )

    async def connect(self) -> None:
        """Connect; create the stream and the durable consumer if absent."""
        import nats

        c = self.config
        self._nc = await asyncio.wait_for(
            nats.connect(
                c.nats_url,
                connect_timeout=5,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            ),
            timeout=10,
        )

        self._sub = await subscribe(
            self._nc.jetstream(),
            stream=c.stream,
            prefix=c.prefix,
            consumer=c.consumer,
            ack_wait_s=c.ack_wait_s,
            max_ack_pending=max(c.max_ack_pending, c.batch_max),
            on_message=self._inbox.put,
        )
        log.info(
            "consuming %s.> from stream %s as durable consumer %s",
            c.prefix,
            c.stream,
            c.consumer,
        )

    async def start(self) -> None:
        """Load the stored state, connect, start the relay, write the first heartbeat."""
        await asyncio.to_thread(self.load)
        await self.connect()
        if self.relay is not None:
            self.relay.start()
        await asyncio.to_thread(self._heartbeat, "running")
        await asyncio.to_thread(self.heap.settle)  # before the first round, not inside one
        self._beat = time.monotonic()

    async def step(self, stop: asyncio.Event | None = None) -> int:
        """One round (fetch, apply, commit, acknowledge); the messages it took."""
        c = self.config
        messages = await self._inbox.take(c.batch_max, c.batch_ms, stop or asyncio.Event())
        if messages:
            await self._round(messages)
        if time.monotonic() - self._beat >= HEARTBEAT_S:
            await asyncio.to_thread(self._heartbeat, "running")
            self._beat = time.monotonic()
        if self.source is not None and time.monotonic() - self._compared >= self.config.reload_s:
            await asyncio.to_thread(self.reload)
            self._compared = time.monotonic()
        if time.monotonic() - self._pruned >= PRUNE_EVERY_S:
            await asyncio.to_thread(self.prune)
            self._pruned = time.monotonic()
        return len(messages)

    def reload(self) -> bool:
        """Rebuild the book if policies, tree or universe changed; re-check every portfolio.

        The re-check commits as a round of no update: breaches the new rules find open
        violations (decision id `monitor:reload:<time>`), violations they no longer find are
        cured. False when nothing changed (or the universe is gone: the book stays).
        """
        assert self.source is not None
        fingerprint = self.source.fingerprint()
        if fingerprint == self._fingerprint:
            return False
        try:
            rules = self.source.rules()
        except NotFound as exc:
            log.error("the book is kept as it is: %s", exc)
            return False
        self.book = self.book.rebuilt(rules.policies, rules.instruments)
        self._books += 1
        self._fingerprint = fingerprint
        reason = f"reload:{datetime.now(UTC):%Y%m%dT%H%M%S.%fZ}"
        r = _Round(BatchEffect(), dict.fromkeys(self.book.holdings, reason), {})
        opened, cured = self._check_and_commit(r)
        log.info(
            "policies, portfolio tree or universe changed: %d policies monitored now; %d "
            "portfolios re-checked, %d breaches opened, %d violations cured",
            len(self.book.policies),
            r.counts["checks"],
            opened,
            cured,
        )
        self.heap.settle()  # the old book's objects reclaimed, the new one's frozen
        return True

    def prune(self) -> int:
        """Delete the update ids older than `keep_updates_h` (bounded); how many went."""
        older_than = datetime.now(UTC) - timedelta(hours=self.config.keep_updates_h)
        gone = 0
        for _ in range(PRUNE_CHUNKS):
            removed = self.state.prune_updates(older_than, PRUNE_CHUNK)
            gone += removed
            if removed < PRUNE_CHUNK:
                break
        if gone:
            log.info("forgot %d update ids processed before %s", gone, older_than.isoformat())
        return gone

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the round in flight is committed and acknowledged."""
        await self.start()
        try:
            while not stop.is_set():
                await self.step(stop)
        finally:
            await self.close()

    async def close(self) -> None:
        """Drain the outbox to the broker, write the last status (`stopped`), disconnect."""
        if self.relay is not None:
            # The background round in flight finishes first; then what this monitor
            # committed is published (a batch a call) before the publisher goes.
            await self.relay.stop()
            for _ in range(20):
                try:
                    if not self.relay.connected or await self.relay.relay_once() == 0:
                        break
                except Exception:
                    log.warning("outbox not drained at stop; the next relay sends it")
                    break
            await self.relay.publisher.close()
        try:
            await asyncio.to_thread(self._heartbeat, "stopped")
        except Exception:
            log.warning("monitor status not written at stop", exc_info=True)
        if self._nc is not None and not self._nc.is_closed:
            # Delivered but never applied: handed back, so that the next monitor on this
            # consumer gets them at once instead of after the ack wait.
            for msg in self._inbox.drain():
                try:
                    await msg.nak()
                except Exception:  # JetStream redelivers after the ack wait anyway
                    break
            try:
                await self._nc.flush(timeout=5)  # the acknowledgements sent, then close
            finally:
                await self._nc.close()

    def _heartbeat(self, state: str) -> None:
        self.state.heartbeat(lag=self.lag, portfolios=len(self.book.holdings), state=state)

    # -- one round ---------------------------------------------------------------------------

    async def _round(self, messages: Sequence[Any]) -> None:
        started = time.perf_counter()
        try:
            opened, cured = await asyncio.to_thread(self._apply, messages)
        except Exception:
            log.exception(
                "a round of %d updates failed; they will be delivered again", len(messages)
            )
            for msg in messages:
                try:
                    await msg.nak(delay=1.0)
                except Exception:  # the connection is gone: JetStream redelivers anyway
                    break
            await asyncio.sleep(1.0)
            return
        if (opened or cured) and self.relay is not None:
            self.relay.nudge()  # the events are committed: on their way before the acks
        for msg in messages:
            await msg.ack()
        self.rounds += 1
        self._summary.add(len(messages), time.perf_counter() - started)
        if self._summary.due():
            log.info("%s; lag %d", self._summary.line(), self.lag)
            self._summary = RoundSummary()

    def _apply(self, messages: Sequence[Any]) -> tuple[int, int]:
        """Steps 2 to 4 of the module docstring (in a worker thread)."""
        r = _Round(BatchEffect(), {}, {"consumed": len(messages), "rejected": 0})
        parsed = []
        for msg in messages:
            seq, self.lag = stream_position(msg)
            try:
                parsed.append((parse(msg.subject, msg.data, self.config.prefix), seq))
            except BadUpdate as exc:
                uid = update_id_of(msg.data)
                log.warning("update %s on %s rejected: %s", uid or "(no id)", msg.subject, exc)
                r.counts["rejected"] += 1
                if uid is not None:
                    r.effect.updates.append((uid, "rejected", None, seq))
        done = self.state.processed(u.update_id for u, _ in parsed)
        for uid, *_ in r.effect.updates:
            done.add(uid)
        seen: set[str] = set()
        duplicates = 0
        for update, seq in parsed:
            if update.update_id in done or update.update_id in seen:
                duplicates += 1
                continue
            seen.add(update.update_id)
            self._apply_one(update, seq, r)
        r.counts["duplicates"] = duplicates
        return self._check_and_commit(r)

    def _check_and_commit(self, r: _Round) -> tuple[int, int]:
        """Re-check the touched portfolios, commit the round; (opened, cured)."""
        outcome = self.book.check(r.touched)
        r.counts["checks"] = outcome.checked
        r.effect.openings = outcome.openings
        r.effect.clearings = outcome.clearings
        live, cured = self.state.commit(
            r.effect, counts=r.counts, lag=self.lag, portfolios=len(self.book.holdings)
        )
        for (pid, key), (violation_id, source) in live.items():
            self.book.live.setdefault(pid, {})[key] = (
                violation_id,
                "monitor" if source == "opened" else source,
            )
        gone = set(cured)
        for c in outcome.clearings:
            known = self.book.live.get(c.portfolio_id, {})
            for key, (violation_id, _) in list(known.items()):
                if violation_id == c.violation_id:
                    del known[key]  # cured now, or closed by someone else meanwhile
        opened = sum(1 for _, source in live.values() if source == "opened")
        return opened, len(gone)

    def _apply_one(self, update: Any, seq: int, r: _Round) -> None:
        snapshot = isinstance(update, PositionSnapshot)
        if not self.book.knows(update.prices) or (
            snapshot and not self.book.knows(update.positions)
        ):
            unknown = self.book.unknown_symbols(
                [*update.prices, *(update.positions if snapshot else ())]
            )
            log.warning(
                "update %s rejected: symbols not in the universe: %s",
                update.update_id,
                ", ".join(unknown[:5]),
            )
            r.counts["rejected"] += 1
            r.effect.updates.append((update.update_id, "rejected", None, seq))
            return
        for symbol, price in update.prices.items():
            holders = self.book.set_price(symbol, price, seq)
            if holders is None:
                continue  # an older price than the one applied
            for pid in holders:
                r.touched[pid] = update.update_id
            r.effect.prices[symbol] = (price, update.update_id, seq)
        if isinstance(update, PositionSnapshot):
            pid = update.portfolio_id
            # The update is frozen and its positions never changed: held as they are.
            holding = Holding(seq, update.cash, update.positions)
            if self.book.set_holding(pid, holding):
                r.touched[pid] = update.update_id
                r.effect.positions[pid] = (update.update_id, seq, update.cash, holding.quantities)
            r.effect.updates.append((update.update_id, "positions", pid, seq))
        else:
            r.effect.updates.append((update.update_id, "prices", None, seq))

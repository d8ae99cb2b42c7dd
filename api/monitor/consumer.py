"""The monitor's JetStream side: the stream of updates and its durable push consumer.

`subscribe` creates the stream (subjects `<prefix>.>`) if absent and binds a durable push
consumer to it (created if absent, explicit acknowledgement, deliver all, flow control),
handing each message to a callback. An existing pull consumer of the name (what an earlier
version made) is refused with what to do (`ConsumerMismatch`). `Inbox` holds the delivered
messages until a round takes them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["IDLE_HEARTBEAT_S", "ConsumerMismatch", "Inbox", "subscribe"]

FIRST_WAIT_S = 0.5
"""Longest wait for a round's first message: the caller then beats and looks at `stop`."""

IDLE_HEARTBEAT_S = 5.0
"""The server's heartbeat on an idle push consumer (lets the client see a stalled one)."""


class ConsumerMismatch(RuntimeError):
    """The durable consumer exists but is not the push consumer the monitor reads from."""


async def subscribe(
    js: Any,
    *,
    stream: str,
    prefix: str,
    consumer: str,
    ack_wait_s: float,
    max_ack_pending: int,
    on_message: Callable[[Any], Awaitable[None]],
) -> Any:
    """The push subscription of the monitor's consumer (stream and consumer made if absent)."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{prefix}.>"]))
    try:
        known = await js.consumer_info(stream, consumer)
    except NotFoundError:
        known = None
    if known is not None and not known.config.deliver_subject:
        raise ConsumerMismatch(
            f"consumer {consumer!r} of stream {stream!r} is a pull consumer (made by an "
            f"earlier version): delete it (nats consumer rm {stream} {consumer}) and start "
            "again; the updates delivered again are recognised by their ids"
        )
    # A push consumer: the client library hands each message to `on_message` for a few
    # microseconds, where a pull consumer's fetch costs a task and a timer a message (about
    # 2.5 times the intake cost). `max_ack_pending` bounds what waits unacknowledged.
    return await js.subscribe(
        f"{prefix}.>",
        durable=consumer,
        stream=stream,
        cb=on_message,
        manual_ack=True,
        flow_control=True,
        idle_heartbeat=IDLE_HEARTBEAT_S,
        config=ConsumerConfig(
            durable_name=consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_ack_pending=max_ack_pending,
            filter_subject=f"{prefix}.>",
        ),
    )


class Inbox:
    """Messages delivered and not yet taken by a round, in delivery order."""

    def __init__(self) -> None:
        self._waiting: list[Any] = []
        self._arrived = asyncio.Event()

    async def put(self, msg: Any) -> None:
        """The subscription's callback."""
        self._waiting.append(msg)
        self._arrived.set()

    async def take(self, batch_max: int, batch_ms: float, stop: asyncio.Event) -> list[Any]:
        """Up to `batch_max` messages.

        With messages already waiting (a backlog) they are taken at once; otherwise the
        first is awaited (up to FIRST_WAIT_S) and more are collected for at most
        `batch_ms` after it.
        """
        if not self._waiting:
            deadline = time.monotonic() + FIRST_WAIT_S
            while not self._waiting:
                if not await self._wait(deadline) or stop.is_set():
                    return []
            deadline = time.monotonic() + batch_ms / 1000.0
            while len(self._waiting) < batch_max and not stop.is_set():
                if not await self._wait(deadline):
                    break
        got = self._waiting[:batch_max]
        del self._waiting[:batch_max]
        return got

    def drain(self) -> list[Any]:
        """Everything still waiting (handed back at stop), leaving the inbox empty."""
        waiting, self._waiting = self._waiting, []
        return waiting

    async def _wait(self, deadline: float) -> bool:
        """Wait for the next message until `deadline`; False when none came."""
        self._arrived.clear()
        wait = deadline - time.monotonic()
        if wait <= 0:
            return False
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout=wait)
        except TimeoutError:
            return False
        return True

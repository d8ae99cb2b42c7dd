"""Publishers: where the outbox relay sends the events (validations, violation transitions).

Every publisher carries the event's `event_id` so consumers can drop duplicates; the relay
delivers at least once. NATS JetStream drops them itself: the id goes in the `Nats-Msg-Id`
header and the stream's duplicate window discards a second publish of the same id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from api.settings import EventsBackend, Settings

__all__ = [
    "LogPublisher",
    "NatsPublisher",
    "PublishError",
    "Publisher",
    "PulsarPublisher",
    "publisher_for",
]

log = logging.getLogger("pes.events")

CONNECT_S = 10.0
"""Longest wait for a broker connection before giving up (the relay retries later)."""
ACK_TIMEOUT_S = 5.0
"""Longest wait for JetStream's acknowledgement of a published event."""
DUPLICATE_WINDOW_S = 3600.0
"""JetStream drops a re-sent event_id within this window (a stream the service creates);
consumers de-duplicate by event_id beyond it."""


class PublishError(Exception):
    """The broker did not accept an event; it stays in the outbox."""


class ConnectionLost(PublishError):
    """The publisher is not connected; the relay connects again before the next try."""


class Publisher(Protocol):
    """Sends one event to the broker; raises PublishError when it was not accepted."""

    name: str

    async def start(self) -> None:
        """Connect (called once before the first publish)."""

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        """Deliver one event."""

    async def close(self) -> None:
        """Disconnect."""


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class LogPublisher:
    """Writes each event to the `pes.events` log (local use)."""

    name = "log"

    async def start(self) -> None:
        """Nothing to connect."""

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        """Log the event as one JSON line."""
        log.info("event %s %s", event_id, _encode(payload).decode())

    async def close(self) -> None:
        """Nothing to close."""


class NatsPublisher:
    """NATS JetStream: publishes to `subject` on `stream`, creating the stream if absent.

    An event with a `notify` subject (an escalation rule's) goes to
    `<notify_prefix>.<notify>` instead, on the same stream: the first such event adds
    `<notify_prefix>.>` to the stream's subjects (a stream with no escalation never claims
    them, so several services' streams can share one server).
    """

    name = "nats"

    def __init__(
        self, url: str, stream: str, subject: str, notify_prefix: str = "pes.escalations"
    ) -> None:
        self.url, self.stream, self.subject = url, stream, subject
        self.notify_prefix = notify_prefix
        self._nc: Any = None
        self._js: Any = None
        self._notify_ready = False

    async def start(self) -> None:
        """Connect and make sure the stream exists; PublishError within `CONNECT_S`."""
        import nats
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        async def connect() -> Any:
            return await nats.connect(
                self.url,
                connect_timeout=5,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
            )

        try:
            # A broker that is down must not hang start-up: bound the first connection.
            self._nc = await asyncio.wait_for(connect(), timeout=CONNECT_S)
            self._js = self._nc.jetstream()
            try:
                await self._js.stream_info(self.stream)
            except NotFoundError:
                await self._js.add_stream(
                    StreamConfig(
                        name=self.stream,
                        subjects=[self.subject],
                        duplicate_window=DUPLICATE_WINDOW_S,
                    )
                )
        except Exception as exc:
            await self.close()
            raise PublishError(f"cannot connect to NATS at {self.url}: {exc!r}") from exc

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        """Publish and wait for JetStream's acknowledgement."""
        if self._js is None or self._nc is None or self._nc.is_closed:
            raise ConnectionLost("not connected to NATS")
        subject = self.subject
        try:
            if payload.get("notify"):
                await self._claim_notify_subjects()
                subject = f"{self.notify_prefix}.{payload['notify']}"
            await self._js.publish(
                subject,
                _encode(payload),
                headers={"Nats-Msg-Id": event_id},
                timeout=ACK_TIMEOUT_S,
            )
        except Exception as exc:  # the client raises several unrelated types
            raise PublishError(f"NATS publish failed: {exc!r}") from exc

    async def publish_many(
        self, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[PublishError | None]:
        """Send the events in order without waiting in between, then await every ack.

        One outcome an event (None: JetStream stored it). After a send that fails, the
        later events are not sent.
        """
        if self._js is None or self._nc is None or self._nc.is_closed:
            return [ConnectionLost("not connected to NATS")] * len(events)
        sent: list[asyncio.Future[Any]] = []
        failure: PublishError | None = None
        for event_id, payload in events:
            try:
                subject = self.subject
                if payload.get("notify"):
                    await self._claim_notify_subjects()
                    subject = f"{self.notify_prefix}.{payload['notify']}"
                sent.append(
                    await self._js.publish_async(
                        subject, _encode(payload), headers={"Nats-Msg-Id": event_id}
                    )
                )
            except Exception as exc:  # the client raises several unrelated types
                failure = PublishError(f"NATS publish failed: {exc!r}")
                break
        outcomes: list[PublishError | None] = []
        for ack in sent:
            try:
                await asyncio.wait_for(ack, timeout=ACK_TIMEOUT_S)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(PublishError(f"NATS publish not acknowledged: {exc!r}"))
        if failure is not None:
            outcomes.append(failure)
        unsent = PublishError("not sent: an earlier event of its window failed")
        return outcomes + [unsent] * (len(events) - len(outcomes))

    async def _claim_notify_subjects(self) -> None:
        """Add `<notify_prefix>.>` to the stream's subjects, once."""
        if self._notify_ready:
            return
        info = await self._js.stream_info(self.stream)
        wanted = f"{self.notify_prefix}.>"
        subjects = list(info.config.subjects or [])
        if wanted not in subjects:
            info.config.subjects = [*subjects, wanted]
            await self._js.update_stream(info.config)
        self._notify_ready = True

    async def close(self) -> None:
        """Flush and disconnect."""
        self._notify_ready = False
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), timeout=CONNECT_S)
            except Exception:  # closing a broken connection: nothing left to save
                await nc.close()


class PulsarPublisher:
    """Apache Pulsar (optional extra `pulsar`), written against the pulsar-client API.

    Each event is sent with `event_id` as both its message key and a property. The client is
    synchronous, so sends run in a worker thread. Not exercised against a live broker here.
    """

    name = "pulsar"

    def __init__(self, url: str, topic: str) -> None:
        self.url, self.topic = url, topic
        self._client: Any = None
        self._producer: Any = None

    async def start(self) -> None:
        """Connect and create the producer."""
        try:
            import pulsar
        except ImportError as exc:
            raise PublishError(
                "the pulsar publisher needs the optional extra: pip install "
                "'policy-enforcement-service[pulsar]'"
            ) from exc

        def connect() -> None:
            self._client = pulsar.Client(self.url, operation_timeout_seconds=int(CONNECT_S))
            self._producer = self._client.create_producer(self.topic, send_timeout_millis=10_000)

        try:
            await asyncio.to_thread(connect)
        except Exception as exc:
            await self.close()
            raise PublishError(f"cannot connect to Pulsar at {self.url}: {exc!r}") from exc

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        """Send synchronously (in a thread) and wait for the broker's acknowledgement."""
        if self._producer is None:
            raise ConnectionLost("not connected to Pulsar")
        try:
            await asyncio.to_thread(
                self._producer.send,
                _encode(payload),
                properties={"event_id": event_id, "event_type": payload["event_type"]},
                partition_key=event_id,
            )
        except Exception as exc:
            raise PublishError(f"Pulsar send failed: {exc!r}") from exc

    async def close(self) -> None:
        """Close producer and client."""
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = self._producer = None


def publisher_for(settings: Settings) -> Publisher | None:
    """The publisher the settings ask for (None for `--events none`)."""
    if settings.events is EventsBackend.NONE:
        return None
    if settings.events is EventsBackend.LOG:
        return LogPublisher()
    if settings.events is EventsBackend.NATS:
        return NatsPublisher(
            settings.nats_url,
            settings.nats_stream,
            settings.nats_subject,
            settings.nats_notify_prefix,
        )
    return PulsarPublisher(settings.pulsar_url, settings.pulsar_topic)

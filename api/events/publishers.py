"""Publishers: where the outbox relay sends `policy_validation_completed` events.

Every publisher carries the event's `event_id` so consumers can drop duplicates; the relay
delivers at least once. NATS JetStream drops them itself: the id goes in the `Nats-Msg-Id`
header and the stream's duplicate window discards a second publish of the same id.
"""

from __future__ import annotations

import asyncio
import json
import logging
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


class PublishError(Exception):
    """The broker did not accept an event; it stays in the outbox."""


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
    """NATS JetStream: publishes to `subject` on `stream`, creating the stream if absent."""

    name = "nats"

    def __init__(self, url: str, stream: str, subject: str) -> None:
        self.url, self.stream, self.subject = url, stream, subject
        self._nc: Any = None
        self._js: Any = None

    async def start(self) -> None:
        """Connect and make sure the stream exists."""
        import nats
        from nats.js.errors import NotFoundError

        self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(name=self.stream, subjects=[self.subject])

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        """Publish and wait for JetStream's acknowledgement."""
        if self._js is None:
            raise PublishError("not connected to NATS")
        try:
            await self._js.publish(
                self.subject, _encode(payload), headers={"Nats-Msg-Id": event_id}, timeout=5
            )
        except Exception as exc:  # the client raises several unrelated types
            raise PublishError(f"NATS publish failed: {exc!r}") from exc

    async def close(self) -> None:
        """Flush and disconnect."""
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None


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
            self._client = pulsar.Client(self.url, operation_timeout_seconds=10)
            self._producer = self._client.create_producer(self.topic, send_timeout_millis=10_000)

        await asyncio.to_thread(connect)

    async def publish(self, event_id: str, payload: dict[str, Any]) -> None:
        """Send synchronously (in a thread) and wait for the broker's acknowledgement."""
        if self._producer is None:
            raise PublishError("not connected to Pulsar")
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
        return NatsPublisher(settings.nats_url, settings.nats_stream, settings.nats_subject)
    return PulsarPublisher(settings.pulsar_url, settings.pulsar_topic)

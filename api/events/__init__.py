"""Validation events: publishers and the outbox relay.

Owns the publishers (`publishers`: log, NATS JetStream, Pulsar) and the relay that moves
committed events from the outbox to one of them, one worker per round, in commit order,
at least once (`relay`). Exposes both. May import `api.store` and `api.settings`, never
`api.http` or `api.cli`.
"""

from __future__ import annotations

from api.events.publishers import (
    ConnectionLost,
    LogPublisher,
    NatsPublisher,
    Publisher,
    PublishError,
    PulsarPublisher,
    publisher_for,
)
from api.events.relay import OutboxRelay

__all__ = [
    "ConnectionLost",
    "LogPublisher",
    "NatsPublisher",
    "OutboxRelay",
    "PublishError",
    "Publisher",
    "PulsarPublisher",
    "publisher_for",
]

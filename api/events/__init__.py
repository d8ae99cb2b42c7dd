"""Validation events: publishers and the outbox relay."""

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

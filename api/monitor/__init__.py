"""`pes monitor`: portfolio-state updates from the broker, re-checked as they arrive.

Owns the update formats and subjects (`updates`), the monitored book and the check of its
holdings through the batch checker (`book`), where the book's rules come from and whether
they changed (`source`), the stream and its durable consumer (`consumer`), the summary
line (`summary`), and the loop that applies updates in micro-batches, commits their effect
and acknowledges them (`worker`); docs/monitor.md.
Exposes `Monitor`, `MonitorConfig`, `Book`. May import `engine`, `models`, `api.store`,
`api.events` and `api.settings`, never `api.http` or `api.cli`.
"""

from __future__ import annotations

from api.monitor.book import Book, Holding, holdings_policies
from api.monitor.consumer import ConsumerMismatch
from api.monitor.source import BookRules, StoredSource
from api.monitor.updates import BadUpdate, PositionSnapshot, PriceTick, parse
from api.monitor.worker import Monitor, MonitorConfig

__all__ = [
    "BadUpdate",
    "Book",
    "BookRules",
    "ConsumerMismatch",
    "Holding",
    "Monitor",
    "MonitorConfig",
    "PositionSnapshot",
    "PriceTick",
    "StoredSource",
    "holdings_policies",
    "parse",
]

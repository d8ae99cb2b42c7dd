"""Escalation of live violations: rules matched, levels raised, webhooks sent.

Owns the matching of a violation against the rules (`rules`), the signed webhook call
(`webhooks`) and the background worker that evaluates the rules and sends due webhooks on
an interval, beside the outbox relay (`worker`). The store does the writing
(`api.store.escalations`); the broker notification is the escalation's outbox event.
Exposes `Escalator`, `EscalationWorker`, `WebhookSender`, `decide`, `destination` (what
readers see of a webhook's URL), `sign`. May import
`api.store`, `api.settings` and `models`, never `api.http` or `api.cli`.
"""

from __future__ import annotations

from api.escalation.rules import ViolationFacts, decide
from api.escalation.webhooks import WebhookSender, destination, sign
from api.escalation.worker import EscalationWorker, Escalator

__all__ = [
    "EscalationWorker",
    "Escalator",
    "ViolationFacts",
    "WebhookSender",
    "decide",
    "destination",
    "sign",
]

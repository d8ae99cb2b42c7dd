"""Escalation webhooks: a JSON POST signed with HMAC-SHA256, retried with backoff.

The receiver checks ``X-PES-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 under the shared secret (`PES_WEBHOOK_SECRET`) of ``"<t>.<body>"``; the
timestamp lets it refuse replays. ``X-PES-Delivery`` is the delivery's id (the same on
every retry: a receiver de-duplicates by it). A 2xx answer is delivered; anything else, or
no answer within the timeout, is retried after the backoff (doubled each time) until the
attempts run out, and every attempt's outcome is recorded on the delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from api.settings import Settings
from api.store import Delivery, EscalationStore

__all__ = ["Post", "WebhookSender", "destination", "sign"]

log = logging.getLogger("pes.escalation")

Post = Callable[[str, bytes, dict[str, str], float], int]
"""Sends a body to a URL with headers within a timeout; the HTTP status (raises OSError
when no answer came)."""


def destination(url: str) -> str:
    """What a reader may see of a webhook's URL: its scheme, host and port.

    A webhook's path and query often are its credential (chat services put the token in
    the path), and user information is one outright, so neither is shown beside a
    delivery; the full URL stays in the escalation rules, which only admins change.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal goes back in brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a malformed port: show none rather than fail the page
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-PES-Signature` header of `body` sent at `timestamp`."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _urllib_post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


class WebhookSender:
    """Sends the due deliveries, one attempt each per round."""

    def __init__(
        self, store: EscalationStore, settings: Settings, post: Post = _urllib_post
    ) -> None:
        self.store, self.settings, self.post = store, settings, post

    def send_due(self, now: datetime | None = None) -> int:
        """One attempt at every due delivery; the number delivered."""
        now = now or datetime.now(UTC)
        delivered = 0
        for delivery in self.store.due(now=now):
            delivered += self._attempt(delivery, now)
        return delivered

    def _attempt(self, delivery: Delivery, now: datetime) -> int:
        secret = self.settings.webhook_secret
        if secret is None:
            self.store.record_attempt(
                delivery.id,
                now=now,
                status_code=None,
                error="PES_WEBHOOK_SECRET is not set: a webhook is never sent unsigned",
                retry_in=None,
            )
            return 0
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "policy-enforcement-service",
            "X-PES-Delivery": str(delivery.id),
            "X-PES-Signature": sign(secret.get_secret_value().encode(), int(now.timestamp()), body),
        }
        status: int | None = None
        try:
            status = self.post(delivery.url, body, headers, self.settings.webhook_timeout_s)
            error = None if 200 <= status < 300 else f"answered HTTP {status}"
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad URL
            error = f"no answer: {exc}"
        attempts = delivery.attempts + 1
        retry_in = None
        if error is not None and attempts < self.settings.webhook_max_attempts:
            retry_in = timedelta(seconds=self.settings.webhook_backoff_s * 2 ** (attempts - 1))
        self.store.record_attempt(
            delivery.id, now=now, status_code=status, error=error, retry_in=retry_in
        )
        if error is None:
            return 1
        log.warning(
            "webhook %d (rule %s, violation %d) attempt %d: %s%s",
            delivery.id,
            delivery.rule,
            delivery.violation_id,
            attempts,
            error,
            "" if retry_in else "; giving up",
        )
        return 0

"""PostgreSQL `LISTEN`: each worker hears every committed global-policy version at once.

A writer sends `NOTIFY pes_global_policy` with `{"schema": ..., "version": N}` in the
transaction of the version (`api.store.global_policy`), so it arrives when that commits.
`GlobalPolicyListener` holds a connection of its own, listening, in a background thread;
a notification of its schema makes the worker's `GlobalPolicyCache` read that version at
once (`GlobalPolicyCache.notified`). The thread never touches a validation: it only
replaces the cache's copy, under the cache's lock, after reading outside it.

Polling stays the safety net. A lost connection is re-opened with backoff (0.5 s doubling
to 30 s); each time the listener starts listening it asks for the latest version, catching
any change it missed, and in between every read still polls at most every `refresh_s`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from api.global_controls import GlobalPolicyCache
from api.store.global_policy import CHANNEL

__all__ = ["GlobalPolicyListener"]

log = logging.getLogger("pes.global_policy")

BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0
"""Waits before re-opening a lost listening connection: doubling from the first to the max."""
WAKE_S = 0.1
"""How often the listening thread looks up from its connection to see if it must stop."""


class GlobalPolicyListener:
    """A background thread that listens on `CHANNEL` and refreshes `cache` on each version.

    Parameters
    ----------
    cache
        This worker's copy of the global policy.
    connect
        Opens a new autocommit connection to the store's database
        (`api.store.db.listen_connector`); tests pass one that fails.
    """

    def __init__(
        self, cache: GlobalPolicyCache, connect: Callable[[], psycopg.Connection[Any]]
    ) -> None:
        self.cache = cache
        self.connect = connect
        self.listening = False
        """True while the connection is open and listening."""
        self.connections = 0
        """How many times a listening connection was opened (more than 1: reconnected)."""
        self.notifications = 0
        """Notifications of this schema received."""
        self._warned = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listening in a daemon thread (returns at once; it connects by itself)."""
        self._thread = threading.Thread(target=self._run, name="pes-global-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and close its connection (waits at most `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        wait_s = BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                self._listen()
                wait_s = BACKOFF_FIRST_S
            except Exception as exc:  # never let the thread die: back off and reconnect
                if not self._warned:  # once an outage, not at every attempt
                    self._warned = True
                    reason = (str(exc).splitlines() or [""])[0]
                    log.warning(
                        "global policy: not listening for changes (%s: %s); polling every "
                        "%g s, reconnecting",
                        exc.__class__.__name__,
                        reason,
                        self.cache.refresh_s,
                    )
                self.listening = False
                self._stop.wait(wait_s)
                wait_s = min(wait_s * 2, BACKOFF_MAX_S)
            finally:
                self.listening = False

    def _listen(self) -> None:
        with self.connect() as conn:
            schema = conn.execute("SELECT coalesce(current_schema(), '')").fetchone()
            mine = "" if schema is None else str(schema[0])
            conn.execute(f"LISTEN {CHANNEL}")
            self.connections += 1
            self.listening = True
            self._warned = False
            log.info("global policy: listening on %s (schema %s)", CHANNEL, mine)
            self.cache.notified()  # anything committed before LISTEN took effect
            while not self._stop.is_set():
                for notification in conn.notifies(timeout=WAKE_S):
                    self._received(notification.payload, mine)

    def _received(self, payload: str, schema: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("schema") != schema:
                return  # another service's schema on the same database
            version = int(data["version"])
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("global policy: ignored a notification %r", payload[:200])
            return
        self.notifications += 1
        self.cache.notified(version)

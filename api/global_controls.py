"""Each worker's copy of the global policy, and how a change reaches every worker.

A worker keeps the current version in memory. At most every `refresh_s` seconds a read
asks the database for the latest version number (one indexed query on the unique version)
and reads and parses the policy only when that number changed; a change made through this
worker replaces its copy at once. So a change made through any worker is applied by every
other worker's next read after at most `refresh_s` (plus that query's time): the bound
docs/global-policy.md states and tests/api/test_global_policy_workers.py checks with real
processes.

On PostgreSQL a listener (`api.global_notify`) also hears each committed version and calls
`notified`, which reads it at once: the change is applied in milliseconds, and polling is
the safety net that catches a notification lost with its connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError

from api.store import NotFound, Unavailable
from api.store.global_policy import GlobalPolicyStore, StoredGlobalPolicy
from engine.resolve.global_policy import GlobalControls

__all__ = ["GlobalPolicyCache"]


class GlobalPolicyCache:
    """The current global policy of one worker, refreshed from the store.

    Parameters
    ----------
    store
        The global policy's versions.
    refresh_s
        Longest time a read trusts the copy without asking for the latest version number
        (0: ask on every read).
    clock
        Monotonic seconds (tests move it by hand).
    """

    def __init__(
        self,
        store: GlobalPolicyStore,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.clock = clock
        self._stored: StoredGlobalPolicy | None = None
        self._checked = 0.0
        self._stale = False
        self._lock = threading.Lock()
        self.reads = 0
        """How many times the policy itself was read and parsed (not the version number)."""
        self.notified_count = 0
        """How many notified versions replaced the copy (`notified`)."""

    def current(self) -> StoredGlobalPolicy:
        """The current version, as of at most `refresh_s` ago.

        Raises `Unavailable` (503) when the database cannot be read: a validation must not
        run without its global policy.
        """
        with self._lock:
            now = self.clock()
            fresh = not self._stale and now - self._checked < self.refresh_s
            if self._stored is not None and fresh:
                return self._stored
            try:
                self._refresh()
            except DataError:
                raise
            except (SQLAlchemyError, ValidationError) as exc:  # fail closed
                reason = exc.__class__.__name__
                raise Unavailable(f"the global policy cannot be loaded: {reason}") from exc
            self._checked = now
            self._stale = False
            assert self._stored is not None
            return self._stored

    def peek(self) -> tuple[StoredGlobalPolicy | None, float | None]:
        """The copy and the seconds since it was last known current; no database access.

        (None, None) before the first successful load. Takes no lock: a read refreshing
        from a database that hangs holds it, and `/readyz` and `/metrics` must still answer.
        """
        stored, checked = self._stored, self._checked
        if stored is None:
            return None, None
        return stored, max(0.0, self.clock() - checked)

    def notified(self, version: int | None = None) -> bool:
        """Version `version` was committed (None: some may have been missed); read it now.

        Called by the listener's thread. The database is read outside the lock, so reads
        never wait on it; a version not newer than the copy is ignored. When the read
        fails the copy is marked stale instead, and the next read polls (and answers 503
        if the database is still out). True when the copy was replaced. Never raises.
        """
        with self._lock:
            have = None if self._stored is None else self._stored.version
        if version is not None and have is not None and version <= have:
            return False
        try:
            if version is None:
                version = self.store.latest_version()
                if version is None or (have is not None and version <= have):
                    return False
            stored = self.store.get(version)
        except (SQLAlchemyError, ValidationError, NotFound):
            self.stale()
            return False
        with self._lock:
            if self._stored is not None and stored.version <= self._stored.version:
                return False
            self._stored = stored
            self._checked = self.clock()
            self.reads += 1
            self.notified_count += 1
        return True

    def stale(self) -> None:
        """Make the next read ask the database, whatever `refresh_s` says."""
        with self._lock:
            self._stale = True

    def controls(self) -> GlobalControls:
        """The current version as the engine applies it."""
        stored = self.current()
        return GlobalControls(stored.policy, stored.version)

    def written(self, stored: StoredGlobalPolicy) -> None:
        """A version this worker just wrote (or read): its copy, unless it has a newer one."""
        with self._lock:
            if self._stored is None or stored.version >= self._stored.version:
                self._stored = stored
                self._checked = self.clock()

    def _refresh(self) -> None:
        latest = self.store.latest_version()
        if latest is not None and self._stored is not None and latest == self._stored.version:
            return
        self._stored = self.store.get(latest)
        self.reads += 1

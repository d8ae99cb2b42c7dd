"""A bounded, least-recently-used cache with hit and miss counters: the service's one LRU.

The engine's compiled-problem, capacity-problem and layout caches and the api's reference
data cache all keep their entries in an `LruCache`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LruCache"]

V = TypeVar("V")


class LruCache(Generic[V]):
    """At most `max_entries` values by key; the least recently used goes first."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: Hashable) -> V | None:
        """The value under `key` (a hit, now the most recently used), or None (a miss)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value` under `key`, dropping the least recently used beyond `max_entries`."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        """The value under `key`, built (and stored) on a miss."""
        entry = self.lookup(key)
        if entry is not None:
            return entry
        entry = build()
        self.put(key, entry)
        return entry

"""Registered reference data for requests: store lookups behind a bounded LRU cache.

Stored versions are immutable, so a parsed version can be kept for as long as there is
room: a request naming `sp500` version 3 after the first one costs a dictionary lookup, not
a read and parse of 500 instruments. A request without a version asks the database for the
latest version number (one indexed query), so a new version written through any worker is
used by the next request everywhere. The cached objects are shared between requests, which
also keeps the engine's layout cache key (built from the instruments) the same.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from api.store import NotFound, ReferenceDataStore, Store
from engine.lru import LruCache
from engine.resolve.references import (
    FxSnapshotData,
    ReferenceNotFound,
    ReferenceSource,
    Resolution,
    RiskModelData,
    UniverseData,
    resolve_references,
)
from models import (
    DataReference,
    FxSnapshot,
    PolicyValidationRequest,
    PolicyValidationResponse,
    RiskModelDefinition,
    Universe,
)
from models.capacity import CapacityRequest
from models.export import ConstraintSetRequest

__all__ = ["NoReferences", "ReferenceCache", "StoreReferences", "reported", "resolved"]

_Request = TypeVar("_Request", PolicyValidationRequest, CapacityRequest, ConstraintSetRequest)


def resolved(request: _Request, source: ReferenceSource) -> tuple[_Request, Resolution]:
    """`request` with the reference data it names merged in, and the resolution.

    The one way every edge (the service's validate, capacity and export; `pes validate`)
    turns a request into the plain form the engine evaluates
    (`engine.resolve.references.resolve_references`). Run the engine inside the
    resolution's `located()`, so that an error about a universe's instrument points there;
    `reported` adds the versions used to a validation response. Unknown ids or versions
    raise `InputError` naming the field; the source's own failures propagate.
    """
    resolution = resolve_references(request.portfolio_state, source)
    return request.model_copy(update={"portfolio_state": resolution.state}), resolution


def reported(
    response: PolicyValidationResponse, resolution: Resolution
) -> PolicyValidationResponse:
    """`response` saying which reference data versions it used (itself when none)."""
    if resolution.used is None:
        return response
    return response.model_copy(update={"reference_data": resolution.used})


class ReferenceCache:
    """Parsed versions by (kind, id, version), least recently used out first; thread-safe."""

    def __init__(self, max_entries: int = 16) -> None:
        self._lru: LruCache[Any] = LruCache(max_entries)
        self._lock = threading.Lock()

    @property
    def max_entries(self) -> int:
        """The most versions kept."""
        return self._lru.max_entries

    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
        return self._lru.hits

    @property
    def misses(self) -> int:
        """Lookups that found nothing."""
        return self._lru.misses

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, key: tuple[str, str, int]) -> Any | None:
        """The cached value of `key`, or None (counted as a miss)."""
        with self._lock:
            return self._lru.lookup(key)

    def put(self, key: tuple[str, str, int], value: Any) -> None:
        """Keep `value` under `key`, dropping the least recently used entry when full."""
        with self._lock:
            self._lru.put(key, value)


class StoreReferences:
    """The engine's `ReferenceSource` over the store, through a `ReferenceCache`."""

    def __init__(self, store: Store, cache: ReferenceCache) -> None:
        self.store = store
        self.cache = cache

    def universe(self, ref: DataReference) -> UniverseData:
        """The universe `ref` names; ReferenceNotFound names the part that is unknown."""
        version = self._version(self.store.universes, ref)
        key = ("universe", ref.id, version)
        cached = self.cache.get(key)
        if isinstance(cached, UniverseData):
            return cached
        universe: Universe = self._definition(self.store.universes, ref, version)
        data = UniverseData(ref.id, version, tuple(universe.instruments))
        self.cache.put(key, data)
        return data

    def risk_model(self, ref: DataReference) -> RiskModelData:
        """The risk model `ref` names; ReferenceNotFound names the part that is unknown."""
        version = self._version(self.store.risk_models, ref)
        key = ("risk_model", ref.id, version)
        cached = self.cache.get(key)
        if isinstance(cached, RiskModelData):
            return cached
        definition: RiskModelDefinition = self._definition(self.store.risk_models, ref, version)
        data = RiskModelData(ref.id, version, definition.risk_model)
        self.cache.put(key, data)
        return data

    def fx_snapshot(self, ref: DataReference) -> FxSnapshotData:
        """The FX snapshot `ref` names; ReferenceNotFound names the part that is unknown."""
        version = self._version(self.store.fx_snapshots, ref)
        key = ("fx_snapshot", ref.id, version)
        cached = self.cache.get(key)
        if isinstance(cached, FxSnapshotData):
            return cached
        snapshot: FxSnapshot = self._definition(self.store.fx_snapshots, ref, version)
        data = FxSnapshotData(ref.id, version, snapshot.base_currency, dict(snapshot.rates))
        self.cache.put(key, data)
        return data

    @staticmethod
    def _version(store: ReferenceDataStore[Any], ref: DataReference) -> int:
        if ref.version is not None:
            return ref.version
        latest = store.latest_version(ref.id)
        if latest is None:
            raise _not_found(store, ref, None)
        return latest

    @staticmethod
    def _definition(store: ReferenceDataStore[Any], ref: DataReference, version: int) -> Any:
        try:
            return store.get(ref.id, version).definition
        except NotFound as exc:
            raise _not_found(store, ref, store.latest_version(ref.id)) from exc


def _not_found(
    store: ReferenceDataStore[Any], ref: DataReference, latest: int | None
) -> ReferenceNotFound:
    if latest is None:
        return ReferenceNotFound(
            "id",
            f"no {store.noun} {ref.id!r} is registered (PUT /api/v1/{store.collection}/{ref.id})",
        )
    return ReferenceNotFound(
        "version", f"no version {ref.version} of {store.noun} {ref.id!r} (the latest is {latest})"
    )


class NoReferences:
    """The `ReferenceSource` of a process without a database: every reference is refused."""

    def __init__(self, hint: str) -> None:
        self.hint = hint

    def universe(self, ref: DataReference) -> UniverseData:
        """Refuse: there is nothing to look `ref` up in."""
        raise ReferenceNotFound("id", f"universe {ref.id!r} is registered data: {self.hint}")

    def risk_model(self, ref: DataReference) -> RiskModelData:
        """Refuse: there is nothing to look `ref` up in."""
        raise ReferenceNotFound("id", f"risk model {ref.id!r} is registered data: {self.hint}")

    def fx_snapshot(self, ref: DataReference) -> FxSnapshotData:
        """Refuse: there is nothing to look `ref` up in."""
        raise ReferenceNotFound("id", f"FX snapshot {ref.id!r} is registered data: {self.hint}")

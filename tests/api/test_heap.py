"""The heap freezer: long-lived objects out of full collections, nothing leaked."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.heap import Heap, resident_mb
from api.http.app import create_app
from api.settings import Settings
from tests.api.conftest import TestClient, core_policies, example_request, services_of


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    """Leave the test process's collector as it was found."""
    yield
    gc.unfreeze()


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settle_freezes_and_waits_for_growth() -> None:
    growth = _Counter()
    heap = Heap(growth)
    assert heap.grown()  # never settled
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert not heap.grown()
    heap.settle()  # nothing grew: no second full collection
    assert heap.settlements == 1
    growth.value += 1
    assert heap.grown()
    heap.settle()
    assert heap.settlements == 2 and not heap.grown()


def test_light_settlements_leave_frozen_cycles_until_a_full_one_is_due(
    caplog: pytest.LogCaptureFixture,
) -> None:
    growth = _Counter()
    heap = Heap(growth, reclaim_after=3)
    cached = _Cycle()  # a cache entry frozen at the first (full) settlement
    alive = weakref.ref(cached)
    heap.settle()
    assert heap.reclaims == 1
    del cached  # evicted
    for settled in (2, 3):
        newer = _Cycle()  # a newer entry, alive while its growth is settled
        newer_alive = weakref.ref(newer)
        growth.value += 1
        with caplog.at_level(logging.DEBUG, logger="pes.heap"):
            heap.settle()
        assert "heap settled (light)" in caplog.text
        assert heap.settlements == settled and heap.reclaims == 1
        assert alive() is not None  # a light settlement cannot reclaim it
        del newer
        gc.collect()
        assert newer_alive() is not None  # the settlement froze it: out of the collector's sight
    growth.value += 1  # 3 since the full settlement: the next one is full
    heap.settle()
    assert heap.reclaims == 2 and alive() is None


class _Memory:
    """A resident memory the test sets (MiB), or None: not readable."""

    def __init__(self) -> None:
        self.mb: float | None = 100.0

    def __call__(self) -> float | None:
        return self.mb


def test_a_full_settlement_waits_for_the_memory_it_could_give_back() -> None:
    growth, memory = _Counter(), _Memory()
    heap = Heap(growth, reclaim_after=2, reclaim_mb=64.0, memory=memory)
    heap.settle()  # the first: full, at 100 MiB
    for value, mb, reclaims in [
        (1, 100.0, 1),  # fewer misses than reclaim_after
        (2, 150.0, 1),  # misses enough, but 50 MiB gained: light
        (3, 163.9, 1),
        (4, 164.0, 2),  # 64 MiB gained: full, the baseline now 164
        (6, 200.0, 2),
        (8, None, 3),  # memory unreadable: misses alone decide
    ]:
        growth.value, memory.mb = value, mb
        heap.settle()
        assert heap.reclaims == reclaims, (value, mb)


def test_the_resident_memory_is_read_where_the_system_tells_it() -> None:
    mb = resident_mb()
    assert mb is None or 1.0 < mb < 1e6


def test_reclaim_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="reclaim_after"):
        Heap(_Counter(), reclaim_after=0)
    with pytest.raises(ValueError, match="reclaim_mb"):
        Heap(_Counter(), reclaim_mb=-1.0)


def test_disabled_heap_never_freezes() -> None:
    gc.unfreeze()
    heap = Heap(_Counter(), enabled=False)
    assert not heap.grown()
    heap.settle()
    assert gc.get_freeze_count() == 0 and heap.settlements == 0


def test_cyclic_garbage_frozen_earlier_is_reclaimed_at_the_next_settlement() -> None:
    growth = _Counter()
    heap = Heap(growth)
    cached = _Cycle()  # like a cache entry: alive at the freeze, evicted later
    alive = weakref.ref(cached)
    heap.settle()
    del cached
    gc.collect()
    assert alive() is not None  # frozen: out of the collector's sight
    growth.value += 1
    heap.settle()
    assert alive() is None


def _app(tmp_path: Path, *, gc_freeze: bool) -> Any:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'pes.db'}", events="none", gc_freeze=gc_freeze
    )
    return create_app(settings)


def test_the_service_freezes_at_start_and_after_a_request_that_compiled(tmp_path: Path) -> None:
    gc.unfreeze()
    with TestClient(_app(tmp_path, gc_freeze=True)) as client:
        services = services_of(client)
        heap = services.heap
        assert heap.settlements == 1 and gc.get_freeze_count() > 0
        engine = services.engine
        assert heap.reclaim_after == (
            engine.cache.max_entries
            + engine.layouts.max_entries
            + services.settings.reference_cache_size
        )
        assert heap.reclaim_mb == services.settings.gc_reclaim_mb == 64.0
        for policy in core_policies():
            client.post("/api/v1/policies", json=policy).raise_for_status()
        body = example_request("aapl-overweight")
        first = client.post("/api/v1/validate", json=body)
        assert first.status_code == 200
        assert heap.settlements == 2  # the first validation compiled: settled after it
        assert heap.reclaims == 1  # lightly: a full settlement waits for the caches to turn
        body["decision"]["decision_id"] = "another-decision"
        assert client.post("/api/v1/validate", json=body).status_code == 200
        assert heap.settlements == 2  # same structure, cache hit: nothing to settle


def test_a_service_with_gc_freeze_off_leaves_the_collector_alone(tmp_path: Path) -> None:
    gc.unfreeze()
    with TestClient(_app(tmp_path, gc_freeze=False)) as client:
        for policy in core_policies():
            client.post("/api/v1/policies", json=policy).raise_for_status()
        assert client.post("/api/v1/validate", json=example_request("aapl-overweight")).is_success
        assert gc.get_freeze_count() == 0
        assert services_of(client).heap.settlements == 0

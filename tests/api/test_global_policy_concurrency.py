"""Concurrent changes of the global policy: none lost or overwritten, no race a 500.

Real concurrency, as tests/api/test_policy_concurrency.py: threads share one app, and
processes, each with an app of its own, share the database. Both databases. Writers are
serialized (docs/global-policy.md), so patches of different fields all land, versions are
consecutive, and of several changes conditional on one version exactly one is made.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from api.http.app import create_app
from api.settings import Settings
from api.store import Store
from models import defaults_from_environment
from tests.concurrency import together

ROUNDS = 3
FIELD_VALUES: dict[str, list[Any]] = {
    "max_positions": [10 + k for k in range(ROUNDS)],
    "max_risk_per_trade": [0.02 + k / 100 for k in range(ROUNDS)],
    "global_min_confidence": [0.5 + k / 10 for k in range(ROUNDS)],
    "allowed_strategies": [[f"s{k}"] for k in range(ROUNDS)],
    "allowed_symbols": [[f"SYM{k}"] for k in range(ROUNDS)],
    "risk_mode": ["DEFENSIVE", "AGGRESSIVE", "DEFENSIVE"],
}
MODELS = [f"model-{k}" for k in range(4)]


def _defaults() -> Any:
    return defaults_from_environment({})


def _app(database_url: str) -> Any:
    return create_app(Settings(database_url=database_url, events="none"), global_defaults=_defaults)


def _patches(client: TestClient, field: str) -> list[int]:
    return [
        client.patch("/api/policy", json={field: value}).status_code
        for value in FIELD_VALUES[field]
    ]


def _model_versions(client: TestClient, name: str) -> list[int]:
    """Each writer records its own model's versions: a map merged key by key."""
    return [
        client.patch("/api/policy", json={"model_versions": {name: f"v{k}"}}).status_code
        for k in range(ROUNDS)
    ]


def _assert_all_landed(
    client: TestClient, fields: list[str], names: list[str], changes: int
) -> None:
    got = client.get("/api/policy").json()
    for field in fields:
        assert got[field] == FIELD_VALUES[field][-1], (field, got)
    assert got["model_versions"] == {name: f"v{ROUNDS - 1}" for name in names}
    assert got["version"] == 1 + changes
    history = client.get("/api/policy/versions", params={"limit": 1000}).json()
    assert [v["version"] for v in history] == list(range(1 + changes, 0, -1))


def test_concurrent_patches_of_distinct_fields_all_land(database_url: str) -> None:
    fields = list(FIELD_VALUES)
    with TestClient(_app(database_url), raise_server_exceptions=False) as client:

        def work(k: int) -> list[int]:
            if k < len(fields):
                return _patches(client, fields[k])
            return _model_versions(client, MODELS[k - len(fields)])

        statuses = [s for batch in together(len(fields) + len(MODELS), work) for s in batch]
        assert statuses == [200] * len(statuses)
        _assert_all_landed(client, fields, MODELS, len(statuses))


def test_only_one_of_concurrent_conditional_changes_wins(database_url: str) -> None:
    count = 12
    with TestClient(_app(database_url), raise_server_exceptions=False) as client:

        def work(k: int) -> int:
            if k % 2:
                r = client.post("/api/policy/risk_mode/DEFENSIVE", headers={"If-Match": '"1"'})
            else:
                r = client.patch(
                    "/api/policy", json={"max_positions": 10 + k}, headers={"If-Match": '"1"'}
                )
            return r.status_code

        statuses = together(count, work)
        assert sorted(statuses) == [200] + [412] * (count - 1), statuses
        assert client.get("/api/policy").json()["version"] == 2


def _in_process(database_url: str, job: str, start: Any) -> list[int]:
    """A worker process: an app of its own on the shared database (the first opens it)."""
    with TestClient(_app(database_url), raise_server_exceptions=False) as client:
        start.wait(timeout=300)
        if job in FIELD_VALUES:
            return _patches(client, job)
        return _model_versions(client, job)


def test_concurrent_patches_from_several_processes_all_land(database_url: str) -> None:
    # The processes start on an empty database at once: one stores version 1.
    jobs = ["max_positions", "risk_mode", MODELS[0]]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
        start = manager.Barrier(len(jobs))
        futures = [pool.submit(_in_process, database_url, job, start) for job in jobs]
        statuses = [s for future in futures for s in future.result(timeout=600)]
    assert statuses == [200] * len(statuses)
    with TestClient(_app(database_url)) as client:
        _assert_all_landed(client, jobs[:2], jobs[2:], len(statuses))
        assert client.get("/api/policy/versions", params={"before": 2}).json()[0]["change"] == (
            "initial"
        )


def _initial(database_url: str) -> int:
    store = Store.open(database_url, global_defaults=_defaults)
    try:
        return store.global_policy.current().version
    finally:
        store.engine.dispose()


def test_workers_starting_together_store_one_initial_version(database_url: str) -> None:
    Store.open(database_url).engine.dispose()  # migrated: the race is for version 1 alone
    count = 4
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(count, mp_context=context) as pool:
        versions = list(pool.map(_initial, [database_url] * count, timeout=600))
    assert versions == [1] * count
    store = Store.open(database_url, migrate_schema=False)
    try:
        assert [v.version for v in store.global_policy.versions()] == [1]
    finally:
        store.engine.dispose()

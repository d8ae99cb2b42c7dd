"""Concurrent changes of one policy: no acknowledged change is lost, no race is a 500.

Real concurrency: threads share the app (its sync routes run in a thread pool), and
processes, each with an app of its own, share the database. Both databases.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from api.http.app import create_app
from api.settings import Settings
from models import PolicyDefinition
from tests.api.conftest import services_of
from tests.concurrency import together

NAME = "single-name-cap"
CAP: dict[str, Any] = {
    "policy_name": NAME,
    "policy_type": "POSITION_LIMIT",
    "description": "",
    "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.10}]},
}
ROUNDS = 4

# One sequence of patches per field; each worker patches only its own field.
FIELD_VALUES: dict[str, list[Any]] = {
    "description": [f"round {k}" for k in range(ROUNDS)],
    "enforcement_level": ["advisory", "monitor", "strict", "advisory"],
    "severity": ["LOW", "MEDIUM", "HIGH", "CRITICAL"],
    "when": [f"vix > {k + 10}" for k in range(ROUNDS)],
    "scope": [{"portfolios": [f"pf-{k}"]} for k in range(ROUNDS)],
    "overridable": [True, False, True, True],
}


def _patches(client: TestClient, field: str) -> list[int]:
    return [
        client.patch(f"/api/v1/policies/{NAME}", json={field: value}).status_code
        for value in FIELD_VALUES[field]
    ]


def _disables(client: TestClient) -> list[int]:
    """Alternately re-enable (PATCH) and disable (DELETE): ends disabled."""
    out = []
    for _ in range(ROUNDS // 2):
        out.append(client.patch(f"/api/v1/policies/{NAME}", json={"enabled": True}).status_code)
        out.append(client.delete(f"/api/v1/policies/{NAME}").status_code)
    return out


def _assert_every_change_landed(client: TestClient, fields: list[str], changes: int) -> None:
    got = client.get(f"/api/v1/policies/{NAME}").json()
    for field in fields:
        expected = False if field == "enabled" else FIELD_VALUES[field][-1]
        assert got[field] == expected, (field, got)
    assert got["version"] == 1 + changes
    versions = client.get(f"/api/v1/policies/{NAME}/versions").json()
    assert [v["version"] for v in versions] == list(range(1, 2 + changes))
    # Each version changed at most the one field its request named (a value may repeat).
    assert all(len(v["diff"]) <= 1 for v in versions[1:]), versions


def test_concurrent_patches_of_distinct_fields_all_land(client: TestClient) -> None:
    assert client.post("/api/v1/policies", json=CAP).status_code == 201
    fields = list(FIELD_VALUES)

    def work(k: int) -> list[int]:
        return _patches(client, fields[k]) if k < len(fields) else _disables(client)

    statuses = [s for batch in together(len(fields) + 1, work) for s in batch]
    assert statuses == [200] * len(statuses)
    _assert_every_change_landed(client, [*fields, "enabled"], len(statuses))


def _patch_in_process(database_url: str, field: str, start: Any) -> list[int]:
    """A worker process: an app of its own on the shared database, patching one field.

    `start` (a manager's barrier) releases the workers together once each app is up.
    """
    app = create_app(Settings(database_url=database_url, events="none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        start.wait(timeout=300)
        return _disables(client) if field == "enabled" else _patches(client, field)


def test_concurrent_patches_from_several_processes_all_land(
    client: TestClient, database_url: str
) -> None:
    assert client.post("/api/v1/policies", json=CAP).status_code == 201  # schema migrated
    fields = ["description", "when", "enabled"]  # a few: each process starts an app
    context = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    with context.Manager() as manager, ProcessPoolExecutor(len(fields), mp_context=context) as pool:
        start = manager.Barrier(len(fields))
        jobs = [pool.submit(_patch_in_process, database_url, f, start) for f in fields]
        statuses = [s for job in jobs for s in job.result(timeout=600)]
    assert statuses == [200] * len(statuses)
    _assert_every_change_landed(client, fields, len(statuses))


def test_concurrent_replaces_all_land_in_order(client: TestClient) -> None:
    assert client.post("/api/v1/policies", json=CAP).status_code == 201
    count = 24

    def work(k: int) -> int:
        body = dict(CAP, description=f"replace {k}")
        return client.put(f"/api/v1/policies/{NAME}", json=body).status_code

    assert together(count, work) == [200] * count
    versions = client.get(f"/api/v1/policies/{NAME}/versions").json()
    assert [v["version"] for v in versions] == list(range(1, 2 + count))
    described = sorted(v["definition"]["description"] for v in versions[1:])
    assert described == sorted(f"replace {k}" for k in range(count))
    final = client.get(f"/api/v1/policies/{NAME}").json()
    assert final["description"] == versions[-1]["definition"]["description"]


def test_concurrent_creates_of_one_name_are_one_201_and_409s(client: TestClient) -> None:
    count = 40
    statuses = together(count, lambda _k: client.post("/api/v1/policies", json=CAP).status_code)
    assert sorted(statuses) == [201] + [409] * (count - 1), statuses
    assert client.get(f"/api/v1/policies/{NAME}").json()["version"] == 1
    assert len(client.get(f"/api/v1/policies/{NAME}/versions").json()) == 1


def test_concurrent_creates_of_distinct_names_all_succeed(client: TestClient) -> None:
    count = 20
    statuses = together(
        count,
        lambda k: (
            client.post("/api/v1/policies", json=dict(CAP, policy_name=f"cap-{k}")).status_code
        ),
    )
    assert statuses == [201] * count
    assert len(client.get("/api/v1/policies").json()) == count


def test_concurrent_upserts_lose_nothing(client: TestClient) -> None:
    """`pes policies apply` from several places at once: one create, then replaces."""
    store = services_of(client).store.policies
    count = 16

    def work(k: int) -> str:
        policy = PolicyDefinition.model_validate(dict(CAP, description=f"apply {k}"))
        outcome, _stored = store.upsert(policy, actor=f"cli-{k}")
        return outcome

    outcomes = together(count, work)
    assert sorted(outcomes) == ["created"] + ["replaced"] * (count - 1), outcomes
    versions = store.versions(NAME)
    assert [v.version for v in versions] == list(range(1, 1 + count))
    assert {v.definition["description"] for v in versions} == {f"apply {k}" for k in range(count)}


def test_only_one_of_concurrent_conditional_patches_wins(client: TestClient) -> None:
    """Each names version 1 in If-Match: exactly one finds it, the others get 412."""
    assert client.post("/api/v1/policies", json=CAP).status_code == 201
    count = 12

    def work(k: int) -> int:
        r = client.patch(
            f"/api/v1/policies/{NAME}",
            json={"description": f"conditional {k}"},
            headers={"If-Match": '"1"'},
        )
        return r.status_code

    statuses = together(count, work)
    assert sorted(statuses) == [200] + [412] * (count - 1), statuses
    assert client.get(f"/api/v1/policies/{NAME}").json()["version"] == 2

"""Fixtures of the HTTP service tests: a database per test (SQLite and PostgreSQL), the real
app behind Starlette's TestClient, and the examples shipped in `examples/`.

PostgreSQL isolation: every test gets a schema of its own in the database named by
`PES_TEST_POSTGRES_URL`, selected through libpq's `PGOPTIONS` (`-csearch_path=<schema>`), so
the service, Alembic and the tests' own queries all land in it; the schema is dropped
afterwards. (The URL form `?options=-csearch_path%3D<schema>` would be nicer, but
`api.store.db.alembic_config` hands the rendered URL to configparser, which rejects the `%`:
see `test_store_open_accepts_a_url_with_percent_escapes`.)
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool

from api.http.app import create_app
from api.http.services import Services
from api.settings import Settings
from api.store import Store
from tests.services import postgres_url

if TYPE_CHECKING:
    from distributed import Client

with warnings.catch_warnings():
    # Starlette warns (a UserWarning subclass, which pyproject's DeprecationWarning filter
    # does not cover) when its TestClient runs on httpx rather than httpx2.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CORE_POLICIES = EXAMPLES / "policies" / "core.yaml"
REQUESTS = EXAMPLES / "requests"


def psycopg_url(url: str) -> str:
    """`url` with the psycopg 3 driver (the only PostgreSQL driver installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def core_policies() -> list[dict[str, Any]]:
    """The policies of examples/policies/core.yaml, as JSON data."""
    data = yaml.safe_load(CORE_POLICIES.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def example_request(name: str) -> dict[str, Any]:
    """examples/requests/<name>.json as JSON data (a fresh copy each call)."""
    data = json.loads((REQUESTS / f"{name}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services_of(client: TestClient) -> Services:
    """The running app's long-lived parts (store, engine, metrics)."""
    app: Any = client.app
    services: Services = app.state.services
    return services


@pytest.fixture(autouse=True)
def _no_pes_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read PES_* variables: keep the developer's environment out of the tests."""
    for key in list(os.environ):
        if key.startswith("PES_") and not key.startswith("PES_TEST_"):
            monkeypatch.delenv(key)
    # Freezing the heap collects the whole test process at every app start (hundreds of
    # apps); tests/api/test_heap.py turns it on where it is the subject.
    monkeypatch.setenv("PES_GC_FREEZE", "false")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pes.db'}"
        return
    url = psycopg_url(postgres_url())
    schema = f"pes_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(url, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("PGOPTIONS", f"-csearch_path={schema}")
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The store on `database_url`, migrated; its engine disposed of afterwards."""
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        opened.engine.dispose()


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """The real app on `database_url`, no API keys (every caller is admin), no event relay."""
    app = create_app(Settings(database_url=database_url, events="none"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Client]:
    """A client of one 2-worker LocalCluster (processes, one thread each, as `pes check-all`
    and `pes backtest` start it), shared by every test of this process that runs on Dask.

    Started on first use and closed at the end of the session: a cluster start, and the
    engine's import in each new worker, cost seconds, so each test process pays them once
    instead of once per module. The tests about starting a cluster (tests/api/test_cluster.py,
    the backtest command's `--workers 1`) start their own.
    """
    pytest.importorskip("distributed")
    from api.cluster import ClusterOptions, dask_client

    with dask_client(ClusterOptions(workers=2, memory_limit="1GiB")) as client:
        yield client


@pytest.fixture
def core() -> list[dict[str, Any]]:
    """examples/policies/core.yaml."""
    return core_policies()


@pytest.fixture
def load_request() -> Callable[[str], dict[str, Any]]:
    """examples/requests/<name>.json, by name."""
    return example_request

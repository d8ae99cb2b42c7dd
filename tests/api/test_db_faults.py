"""A PostgreSQL that stops answering: every request ends, within bounds, failing closed.

The service reaches the real PostgreSQL through `tests.netfaults.FaultyProxy`, which is
switched mid-test into a black hole (connections accepted, no data moves either way): no
error, no reset, only silence. Bounds here are the settings' (connect 2 s, statement 1 s,
pool 1 s, /readyz 2 s), so a request should fail within about connect + statement + the
client's grace; a request thread that is still waiting after `HANG_S` fails the test.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url

from api.http.app import create_app
from api.settings import Settings
from api.store import DatabaseTimeouts, connect
from tests.api.conftest import TestClient, core_policies, example_request, services_of
from tests.netfaults import FaultyProxy

WAITING = 4
"""Requests left waiting on the black hole, holding all the app's worker threads."""
HANG_S = 20.0
"""A request still unanswered after this is hanging (bounds below add up to about 6 s)."""
BOUNDS: dict[str, Any] = {
    "db_connect_timeout_s": 2,
    "db_statement_timeout_s": 1,
    "db_pool_timeout_s": 1,
    "readyz_timeout_s": 2,
}


@pytest.fixture
def proxy(database_url: str) -> Iterator[FaultyProxy]:
    url = make_url(database_url)
    with FaultyProxy(url.host or "127.0.0.1", url.port or 5432) as faulty:
        yield faulty


def _through(database_url: str, proxy: FaultyProxy) -> str:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


def _worker_threads(client: TestClient, tokens: int) -> int:
    """Let the app run sync routes on `tokens` threads at most; returns the former limit."""

    def limit() -> int:
        limiter = anyio.to_thread.current_default_thread_limiter()
        before = int(limiter.total_tokens)
        limiter.total_tokens = tokens
        return before

    assert client.portal is not None
    former: int = client.portal.call(limit)
    return former


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    """`call()` in a thread: its response and duration; fails the test if it hangs."""
    result: list[httpx.Response] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            errors.append(exc)

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_S)
    elapsed = time.monotonic() - start
    if thread.is_alive():
        pytest.fail(f"request still waiting after {HANG_S:.0f} s: the database wait is unbounded")
    if errors:
        raise errors[0]
    return result[0], elapsed


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_database_black_hole_turns_into_prompt_503s_and_recovers(
    database_url: str, proxy: FaultyProxy
) -> None:
    settings = Settings(database_url=_through(database_url, proxy), events="none", **BOUNDS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        try:
            for body in core_policies():
                assert client.post("/api/v1/policies", json=body).status_code == 201
            assert client.get("/readyz").status_code == 200

            proxy.black_hole()
            # Requests waiting on the database hold every worker thread meanwhile.
            tokens = _worker_threads(client, WAITING)
            waiting = [
                threading.Thread(target=client.get, args=("/api/v1/policies",), daemon=True)
                for _ in range(WAITING)
            ]
            for thread in waiting:
                thread.start()
            time.sleep(0.5)

            health, took = _timed(lambda: client.get("/healthz"))
            assert health.status_code == 200 and took < 2, took

            ready, took = _timed(lambda: client.get("/readyz"))
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "not ready"
            assert took < BOUNDS["readyz_timeout_s"] + 2, took
            _worker_threads(client, tokens)

            listed, took = _timed(lambda: client.get("/api/v1/policies"))
            assert listed.status_code == 503, listed.text
            assert listed.json()["error"] == "unavailable"
            assert took < 10, took

            answer, took = _timed(
                lambda: client.post("/api/v1/validate", json=example_request("aapl-overweight"))
            )
            assert answer.status_code == 503, answer.text
            assert "is_compliant" not in answer.json()
            assert took < 10, took
            for thread in waiting:
                thread.join(HANG_S)
                assert not thread.is_alive(), "a request still waits on the black hole"

            # The network heals: new connections replace the dead ones.
            proxy.forward()
            deadline = time.monotonic() + HANG_S
            while client.get("/api/v1/policies").status_code != 200:
                assert time.monotonic() < deadline, "the service did not recover"
                time.sleep(0.2)
            assert client.get("/readyz").status_code == 200
        finally:
            # Before the client's exit, which waits for every request: frees any connection
            # still waiting, so the test always ends.
            proxy.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_start_up_on_a_black_hole_fails_within_the_connect_timeout(
    database_url: str, proxy: FaultyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.black_hole()
    settings = Settings(database_url=_through(database_url, proxy), events="none", **BOUNDS)
    caplog.set_level(logging.ERROR, logger="pes.app")
    start = time.monotonic()
    with pytest.raises(Exception, match=r"timeout|expired"):
        with TestClient(create_app(settings)):
            pass
    # Bounded at all is the subject (without the timeout it hangs); the margin absorbs load.
    assert time.monotonic() - start < BOUNDS["db_connect_timeout_s"] + 15
    [record] = [r for r in caplog.records if r.name == "pes.app"]
    assert record.getMessage().startswith("cannot open the store at postgresql+psycopg://")


def _raise(error: Exception) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return fail


ORIG = Exception("server said no")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (sa_exc.TimeoutError("QueuePool limit of size 5 overflow 5 reached"), 503, "unavailable"),
        (sa_exc.OperationalError("SELECT", {}, ORIG), 503, "unavailable"),
        (sa_exc.InterfaceError("SELECT", {}, ORIG), 503, "unavailable"),
        (sa_exc.InternalError("SELECT", {}, ORIG), 503, "unavailable"),
        (sa_exc.DBAPIError("SELECT", {}, ORIG), 503, "unavailable"),
        (sa_exc.DataError("SELECT", {}, ORIG), 422, "invalid_input"),
        (sa_exc.IntegrityError("INSERT", {}, ORIG), 500, "internal_error"),
    ],
)
def test_every_database_failure_is_a_503_json(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    code: str,
) -> None:
    """A database that fails (pool exhausted, connection lost, driver error) is 503; a value
    it refuses is the request's fault (422); a broken constraint is a bug (500)."""
    monkeypatch.setattr(services_of(client).store.policies, "list", _raise(error))
    r = client.get("/api/v1/policies")
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    if status == 503:  # and a validation fails closed, never "compliant"
        answer = client.post("/api/v1/validate", json=example_request("aapl-overweight"))
        assert answer.status_code == 503, answer.text
        assert "is_compliant" not in answer.json()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_statement_timeout_keeps_pgoptions_and_cancels_a_slow_statement(
    database_url: str,
) -> None:
    engine = connect(database_url, DatabaseTimeouts(statement_s=1))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "1s"
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("pes_test_"), "PGOPTIONS' search_path was lost"
            start = time.monotonic()
            with pytest.raises(sa_exc.OperationalError, match="statement timeout"):
                conn.execute(sa.text("SELECT pg_sleep(30)"))
            assert time.monotonic() - start < 15  # far below the 30 s sleep; margin for load
    finally:
        engine.dispose()

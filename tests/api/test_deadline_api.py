"""The request deadline and abandoned requests over HTTP (api.http.abandon, api.http.errors)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import cvxpy as cp
import pytest

from api.cli import main
from api.http.abandon import run_abandonable
from api.http.app import create_app
from api.settings import Settings
from engine import PolicyEngine
from models.portfolio import MAX_INSTRUMENTS, MAX_POSITIONS
from models.validation import MAX_INLINE_POLICIES
from solvers import ClarabelAdapter, SolveOutcome, SolverAdapter, SolverChain, SolveStatus
from tests.api.conftest import core_policies, example_request, services_of

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

DEADLINE_S = 2.0


class OutOfTime(SolverAdapter):
    """A solver that runs until its time limit (the request's time left) and gives up."""

    name = "OUT_OF_TIME"
    package = "cvxpy"
    supports_socp = True

    def solve(self, problem: cp.Problem, **options: Any) -> SolveOutcome:
        limit = options.get("time_limit")
        assert limit is not None, "the engine must hand the time left to every solver"
        time.sleep(float(limit) + 0.01)
        return SolveOutcome(self.name, SolveStatus.INACCURATE, float(limit), message="limit")


def _client(tmp_path: Path, deadline_s: float) -> TestClient:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'pes.db'}",
        events="none",
        request_deadline_s=deadline_s,
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def slow_client(tmp_path: Path) -> Iterator[TestClient]:
    """The app with a solver chain that uses up whatever time a request has left."""
    with _client(tmp_path, DEADLINE_S) as client:
        chain = SolverChain(qp=[OutOfTime(), ClarabelAdapter()], socp=[OutOfTime()])
        engine = PolicyEngine(chain=chain)
        engine.adjuster.fast.separable = False  # it would answer before the chain
        services_of(client).engine = engine
        yield client


def _dry_run() -> dict[str, Any]:
    body = example_request("aapl-overweight")
    body["policies"] = core_policies()
    return body


def test_a_deadline_passing_while_adjusting_is_not_compliant_with_the_reason(
    slow_client: TestClient,
) -> None:
    r = slow_client.post("/api/v1/validate", json=_dry_run())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["is_compliant"] is False
    assert answer["adjusted_decision"] is None
    assert "adjustment timed out" in answer["adjustment_error"]
    assert f"deadline {DEADLINE_S:g} s" in answer["adjustment_error"]


def test_a_deadline_passing_before_the_check_is_503_not_validated(tmp_path: Path) -> None:
    with _client(tmp_path, 1e-6) as client:
        r = client.post("/api/v1/validate", json=_dry_run())
    assert r.status_code == 503, r.text
    error = r.json()
    assert error["error"] == "deadline_exceeded"
    assert "NOT validated" in error["message"]


def test_the_default_deadline_leaves_ordinary_requests_alone(tmp_path: Path) -> None:
    assert Settings().request_deadline_s == 5.0
    with _client(tmp_path, Settings().request_deadline_s) as client:
        r = client.post("/api/v1/validate", json=_dry_run())
    assert r.status_code == 200, r.text
    assert r.json()["adjustment_error"] is None


class _Connection:
    """A connection that reports a disconnect from the `after`-th poll on."""

    def __init__(self, after: int) -> None:
        self.after, self.polls = after, 0

    async def is_disconnected(self) -> bool:
        self.polls += 1
        return self.polls >= self.after


def test_a_disconnected_client_cancels_the_work() -> None:
    cancel = threading.Event()

    def work() -> bool:
        return cancel.wait(timeout=30.0)  # an engine checks the token the same way

    cancelled = anyio.run(lambda: run_abandonable(_Connection(2), cancel, work, poll_s=0.01))
    assert cancelled is True and cancel.is_set()


def test_a_connected_client_gets_the_result_and_no_cancel() -> None:
    cancel = threading.Event()
    connection = _Connection(after=10**9)
    result = anyio.run(lambda: run_abandonable(connection, cancel, lambda: 42, poll_s=0.01))
    assert result == 42 and not cancel.is_set()


@pytest.mark.parametrize(
    ("field", "grow"),
    [
        ("policies", lambda body: body.update(policies=_policies(MAX_INLINE_POLICIES + 1))),
        (
            "portfolio_state.instruments",
            lambda body: body["portfolio_state"].update(
                instruments=[{"symbol": f"S{i}", "price": 1.0} for i in range(MAX_INSTRUMENTS + 1)]
            ),
        ),
        (
            "portfolio_state.positions",
            lambda body: body["portfolio_state"].update(
                positions=[{"symbol": f"S{i}", "quantity": 1} for i in range(MAX_POSITIONS + 1)]
            ),
        ),
    ],
)
def test_request_size_bounds_are_422_naming_the_field(
    tmp_path: Path, field: str, grow: Any
) -> None:
    body = _dry_run()
    grow(body)
    with _client(tmp_path, DEADLINE_S) as client:
        r = client.post("/api/v1/validate", json=body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]]


def _policies(count: int) -> list[dict[str, Any]]:
    template = core_policies()[0]
    return [{**template, "policy_name": f"p{i}"} for i in range(count)]


class _NoMemory:
    """An engine whose every validation runs out of memory."""

    def validate(self, *_args: Any, **_kwargs: Any) -> Any:
        raise MemoryError


def test_running_out_of_memory_is_a_503_json_not_a_crash(tmp_path: Path) -> None:
    with _client(tmp_path, DEADLINE_S) as client:
        services_of(client).engine = _NoMemory()  # type: ignore[assignment]
        r = client.post("/api/v1/validate", json=_dry_run())
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "out_of_memory"
        assert "NOT validated" in r.json()["message"]
        services_of(client).engine = PolicyEngine()
        assert client.post("/api/v1/validate", json=_dry_run()).status_code == 200


def test_cli_running_out_of_memory_exits_2_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(PolicyEngine, "validate", _NoMemory.validate)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(_dry_run()), encoding="utf-8")
    status = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert "out of memory" in err and "NOT validated" in err

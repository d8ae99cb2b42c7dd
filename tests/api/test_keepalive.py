"""After an unexpected error the keep-alive connection still serves requests (real uvicorn).

Starlette's outermost error handler sends the 500 and re-raises; uvicorn then drops the
connection, so the client's next requests on it fail with a reset. `UnexpectedErrors`
answers the JSON 500 itself. This needs a real server: the TestClient has no connection.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from api.http.app import create_app
from api.http.services import Services
from api.settings import Settings
from tests.api.conftest import example_request

REQUESTS = 10


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The real app on uvicorn on a free loopback port, its validation failing with a bug."""

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(Services, "validate", broken)
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'pes.db'}", events="none"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        assert thread.is_alive(), "uvicorn stopped while starting"
        time.sleep(0.02)
    try:
        yield port
    finally:
        instance.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_a_500_leaves_the_keep_alive_connection_usable(
    server: int, caplog: pytest.LogCaptureFixture
) -> None:
    body = example_request("small-rebalance")
    body["policies"] = []  # inline: nothing needs the store
    payload = json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    answers: list[tuple[int, dict[str, object]]] = []
    first_socket = None
    caplog.set_level(logging.ERROR, logger="pes.http")
    try:
        for k in range(REQUESTS):
            if k % 2 == 0:
                headers = {"Content-Type": "application/json"}
                connection.request("POST", "/api/v1/validate", body=payload, headers=headers)
            else:
                connection.request("GET", "/healthz")
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())))
            assert response.getheader("connection", "").lower() != "close"
            if first_socket is None:
                first_socket = connection.sock
            assert connection.sock is first_socket, f"request {k} needed a new connection"
    finally:
        connection.close()
    assert len(answers) == REQUESTS
    assert [status for status, _ in answers] == [500, 200] * (REQUESTS // 2)
    for status, answer in answers:
        if status == 500:
            assert answer["error"] == "internal_error"
    logged = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert len(logged) == REQUESTS // 2  # once per error, each with its traceback
    assert all(r.exc_info and "a bug in the engine" in str(r.exc_info[1]) for r in logged)

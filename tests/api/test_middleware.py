"""The plain ASGI middleware: body limits and request metrics, on a minimal app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from api.http.metrics import Metrics
from api.http.middleware import BodyLimit, RequestMetrics
from engine import PolicyEngine
from tests.api.conftest import TestClient

LIMIT = 1000
REFERENCE_LIMIT = 5000


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body), "head": body[:8].decode(errors="replace")})


async def _fail(_request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


def _app(metrics: Metrics) -> Starlette:
    app = Starlette(
        routes=[
            Route("/echo", _echo, methods=["POST", "PUT"]),
            Route("/api/v1/universes/{uid}", _echo, methods=["PUT"]),
            Route("/items/{item}", _echo, methods=["POST"]),
            Route("/fail", _fail, methods=["GET"]),
        ]
    )
    app.add_middleware(RequestMetrics, metrics=lambda: metrics)
    app.add_middleware(BodyLimit, max_bytes=LIMIT, reference_bytes=REFERENCE_LIMIT)
    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(PolicyEngine(), lambda: 0)


@pytest.fixture
def client(metrics: Metrics) -> Iterator[TestClient]:
    with TestClient(_app(metrics), raise_server_exceptions=False) as c:
        yield c


def _chunks(total: int, size: int = 100) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


def test_bodies_within_the_limit_arrive_whole(client: TestClient) -> None:
    assert client.post("/echo", content=b"a" * LIMIT).json() == {"bytes": LIMIT, "head": "a" * 8}
    chunked = client.post("/echo", content=_chunks(LIMIT))  # no content-length: chunked
    assert chunked.json()["bytes"] == LIMIT


def test_bodies_over_the_limit_are_413_by_declared_length_or_as_they_arrive(
    client: TestClient,
) -> None:
    for r in (
        client.post("/echo", content=b"a" * (LIMIT + 1)),
        client.post("/echo", content=_chunks(LIMIT + 1)),
    ):
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"


def test_reference_uploads_have_the_larger_limit(client: TestClient) -> None:
    assert client.put("/api/v1/universes/u", content=b"a" * REFERENCE_LIMIT).status_code == 200
    assert (
        client.put("/api/v1/universes/u", content=b"a" * (REFERENCE_LIMIT + 1)).status_code == 413
    )
    assert client.put("/echo", content=b"a" * (LIMIT + 1)).status_code == 413


def _sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_metrics_count_by_route_template_and_status_errors_included(
    client: TestClient, metrics: Metrics
) -> None:
    client.post("/items/1", content=b"{}")
    client.post("/items/2", content=b"{}")
    assert client.get("/fail").status_code == 500
    client.get("/nowhere")
    labels = {"method": "POST", "route": "/items/{item}", "status": "200"}
    assert _sample(metrics, "pes_http_requests_total", labels) == 2
    failed = {"method": "GET", "route": "/fail", "status": "500"}
    assert _sample(metrics, "pes_http_requests_total", failed) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert _sample(metrics, "pes_http_requests_total", unmatched) == 1
    timed = {"method": "POST", "route": "/items/{item}"}
    assert _sample(metrics, "pes_http_request_duration_seconds_count", timed) == 2

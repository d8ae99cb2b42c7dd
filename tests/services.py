"""Connections to the real services integration tests use, from environment variables.

`PES_TEST_POSTGRES_URL` (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) and
`PES_TEST_NATS_URL` (e.g. nats://127.0.0.1:4222); `.ci/run` sets both. A test that needs an
unset or unreachable service is skipped with the reason (shown by `pytest -rs`).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

__all__ = ["nats_url", "postgres_url"]


def _reachable(url: str, default_port: int) -> str | None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.__class__.__name__})"


def postgres_url() -> str:
    """The PostgreSQL URL for tests, or skip."""
    url = os.environ.get("PES_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL tests need PES_TEST_POSTGRES_URL (set by .ci/run)")
    problem = _reachable(url, 5432)
    if problem:
        pytest.skip(f"PostgreSQL at PES_TEST_POSTGRES_URL: {problem}")
    return url


def nats_url() -> str:
    """The NATS URL for tests, or skip."""
    url = os.environ.get("PES_TEST_NATS_URL")
    if not url:
        pytest.skip("NATS tests need PES_TEST_NATS_URL (set by .ci/run)")
    problem = _reachable(url, 4222)
    if problem:
        pytest.skip(f"NATS at PES_TEST_NATS_URL: {problem}")
    return url

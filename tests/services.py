"""Connections to the real services integration tests use, from environment variables.

`PES_TEST_POSTGRES_URL` (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) and
`PES_TEST_NATS_URL` (e.g. nats://127.0.0.1:4222); `.ci/run` sets both. The browser tests
use Chromium and its driver at `PES_TEST_CHROMIUM` and `PES_TEST_CHROMEDRIVER` (default:
Debian's /usr/bin/chromium and /usr/bin/chromedriver; `.ci/run` installs them). A test that needs an
unset or unreachable service is skipped with the reason (shown by `pytest -rs`) -- except
under CI (`CI=true` in the environment), where it fails with the reason: a CI run must not
turn green by skipping its integration tests.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlparse

import pytest

__all__ = ["chromium", "nats_url", "postgres_url", "strict"]


def strict() -> bool:
    """Whether a missing service fails the test rather than skipping it (`CI=true`)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def _unavailable(reason: str) -> NoReturn:
    if strict():
        pytest.fail(f"{reason} (CI=true: a missing service fails the test)", pytrace=False)
    pytest.skip(reason)


def _reachable(url: str, default_port: int) -> str | None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.__class__.__name__})"


def _service_url(variable: str, default_port: int, name: str) -> str:
    url = os.environ.get(variable)
    if not url:
        _unavailable(f"{name} tests need {variable} (set by .ci/run)")
    problem = _reachable(url, default_port)
    if problem:
        _unavailable(f"{name} at {variable}: {problem}")
    return url


def postgres_url() -> str:
    """The PostgreSQL URL for tests; skips (fails under CI) when unset or unreachable."""
    return _service_url("PES_TEST_POSTGRES_URL", 5432, "PostgreSQL")


def nats_url() -> str:
    """The NATS URL for tests; skips (fails under CI) when unset or unreachable."""
    return _service_url("PES_TEST_NATS_URL", 4222, "NATS")


def chromium() -> tuple[str, str]:
    """(browser, driver) paths for Selenium; skips (fails under CI) when either is missing."""
    found = []
    for variable, default in (
        ("PES_TEST_CHROMIUM", "/usr/bin/chromium"),
        ("PES_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"),
    ):
        path = os.environ.get(variable) or default
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            _unavailable(f"browser tests need {path} ({variable}; .ci/run installs it)")
        found.append(path)
    return found[0], found[1]

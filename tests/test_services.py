"""tests/services.py: a missing service skips a test locally and fails it under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services import nats_url, postgres_url

REPO = Path(__file__).resolve().parents[1]

SERVICES = [
    pytest.param(
        postgres_url, "PES_TEST_POSTGRES_URL", "postgresql+psycopg://u@127.0.0.1:1/x", id="postgres"
    ),
    pytest.param(nats_url, "PES_TEST_NATS_URL", "nats://127.0.0.1:1", id="nats"),
]


@pytest.mark.parametrize(("service", "variable", "unreachable"), SERVICES)
@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_under_ci_an_unreachable_service_fails_the_test(
    monkeypatch: pytest.MonkeyPatch,
    service: Callable[[], str],
    variable: str,
    unreachable: str,
    ci: str,
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv(variable, unreachable)
    with pytest.raises(pytest.fail.Exception, match=r"127\.0\.0\.1:1 unreachable.*CI=true"):
        service()


@pytest.mark.parametrize(("service", "variable", "unreachable"), SERVICES)
def test_under_ci_an_unset_variable_fails_the_test(
    monkeypatch: pytest.MonkeyPatch, service: Callable[[], str], variable: str, unreachable: str
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(pytest.fail.Exception, match=f"need {variable}"):
        service()


@pytest.mark.parametrize(("service", "variable", "unreachable"), SERVICES)
@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_outside_ci_a_missing_service_skips_the_test_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
    service: Callable[[], str],
    variable: str,
    unreachable: str,
    ci: str | None,
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    monkeypatch.setenv(variable, unreachable)
    with pytest.raises(pytest.skip.Exception, match=r"127\.0\.0\.1:1 unreachable"):
        service()
    monkeypatch.delenv(variable)
    with pytest.raises(pytest.skip.Exception, match=f"need {variable}"):
        service()


NEEDS_NATS = """
from tests.services import nats_url


def test_needs_nats():
    nats_url()
"""


@pytest.mark.parametrize(
    ("ci", "status", "outcome"), [("true", 1, "1 failed"), ("false", 0, "1 skipped")]
)
def test_pytest_reports_a_missing_service_as_failed_under_ci_and_skipped_elsewhere(
    tmp_path: Path, ci: str, status: int, outcome: str
) -> None:
    """End to end, in a pytest of its own: the outcome reported, not only the exception."""
    (tmp_path / "test_needs_nats.py").write_text(NEEDS_NATS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PES_", "PYTEST_"))}
    env.update(CI=ci, PES_TEST_NATS_URL="nats://127.0.0.1:1", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "test_needs_nats.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == status, done.stdout + done.stderr
    assert outcome in done.stdout and "127.0.0.1:1 unreachable" in done.stdout, done.stdout

"""Values from callers are escaped in log lines: a CR/LF cannot forge a second line."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from api.cli import main
from api.http.middleware import UnexpectedErrors
from api.logsafe import printable
from models import PolicyDefinition
from tests.api.conftest import CORE_POLICIES, TestClient, example_request, services_of

FORGED = "dec-1\r\n2026-01-01 INFO pes.validate: decision dec-2: compliant\x1b[2K"


def _one_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message and "\x1b" not in message, message


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("dec-0001", "dec-0001"),
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31m", "\\x1b[31m"),
        ("tab\there", "tab\\there"),
        ("nul\x00", "nul\\x00"),
        ("line\u2028sep", "line\\u2028sep"),
        ("back\\slash", "back\\\\slash"),  # so that an escape in the log is never ambiguous
        ("Zürich 東京", "Zürich 東京"),
    ],
)
def test_printable_escapes_what_a_terminal_or_log_reader_would_act_on(
    raw: str, logged: str
) -> None:
    assert printable(raw) == logged


def test_the_validate_log_line_escapes_the_decision_id(
    client: TestClient, core: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    store = services_of(client).store
    for policy in core:
        store.policies.create(PolicyDefinition.model_validate(policy), actor="test")
    body = example_request("small-rebalance")
    body["decision"]["decision_id"] = FORGED
    caplog.set_level(logging.INFO, logger="pes.validate")
    r = client.post("/api/v1/validate", json=body)
    assert r.status_code == 200, r.text
    [record] = [r for r in caplog.records if r.name == "pes.validate"]
    _one_line(record.getMessage())
    assert "dec-1\\r\\n2026-01-01" in record.getMessage()


def test_an_unexpected_error_logs_the_path_escaped(caplog: pytest.LogCaptureFixture) -> None:
    async def boom(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise RuntimeError("bug")  # on every path, newlines included

    app = UnexpectedErrors(boom)
    caplog.set_level(logging.ERROR, logger="pes.http")
    client = TestClient(app)  # no lifespan: the app knows only http
    r = client.get("/x%0d%0aINFO%20forged%1b")
    assert r.status_code == 500
    [record] = caplog.records
    _one_line(record.getMessage())
    assert record.getMessage().endswith("/x\\r\\nINFO forged\\x1b")


def test_the_cli_log_line_escapes_the_file_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "req\r\nINFO forged.json"
    file.write_text(json.dumps(example_request("small-rebalance")), encoding="utf-8")
    caplog.set_level(logging.INFO, logger="pes")
    status = main(["-v", "validate", str(file), "--policies", str(CORE_POLICIES)])
    assert status in (0, 1)
    [record] = [r for r in caplog.records if r.name == "pes"]
    _one_line(record.getMessage())
    assert "req\\r\\nINFO forged.json" in record.getMessage()
    capsys.readouterr()

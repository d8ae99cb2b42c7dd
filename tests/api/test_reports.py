"""`pes report daily` and `pes policies docs` over a store with a day's activity."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.cli import main
from api.http.app import create_app
from api.reports.daily_pdf import daily_report_pdf
from api.settings import Settings
from api.store import Store, ViolationFilter
from api.store.activity import day_activity
from models import EscalationRule
from tests.api.conftest import core_policies, example_request

TIGHT_CAP = {
    "policy_name": "tight-cap",
    "policy_type": "POSITION_LIMIT",
    "enforcement_level": "strict",
    "description": "Single names capped tighter when the risk mode is defensive",
    "scope": {"portfolios": ["other-book"]},
    "rules": {
        "constraints": [
            {
                "kind": "weight_bounds",
                "max": {
                    "by": "risk_mode",
                    "values": {"DEFENSIVE": 0.05, "NORMAL": 0.08},
                    "default": 0.1,
                },
            }
        ]
    },
}


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A day's activity: validations, violations opened, one escalated, one resolved."""
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    with TestClient(create_app(Settings(database_url=url, events="none"))) as client:
        for node in (
            {"portfolio_id": "firm", "name": "Firm"},
            {"portfolio_id": "global-equity", "name": "Global equity", "parent_id": "firm"},
        ):
            assert client.put(f"/api/v1/portfolios/{node['portfolio_id']}", json=node).is_success
        for policy in [*core_policies(), TIGHT_CAP]:
            assert client.post("/api/v1/policies", json=policy).status_code == 201, policy
        again = example_request("aapl-overweight")
        again["decision"]["decision_id"] = "dec-0003"
        bodies = [example_request("aapl-overweight"), example_request("small-rebalance"), again]
        for body in bodies:
            assert client.post("/api/v1/validate", json=body).is_success
    store = Store.open(url)
    try:
        items, _ = store.violations.page(ViolationFilter(status=("open",)))
        first, second = items[0], items[1]
        store.escalations.escalate(
            first.id,
            EscalationRule(name="desk", level=2),
            actor="escalation rules v1",
            reason="rule desk (level 2)",
            now=datetime.now(UTC),
        )
        store.violations.resolve(second.id, actor="erin", reason="limit raised for the quarter")
    finally:
        store.engine.dispose()
    return url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_the_daily_report(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(UTC).date().isoformat()
    status, html, _ = _run(capsys, "report", "daily", "--date", today, "--database-url", database)
    assert status == 0
    assert f"Compliance report for {today}" in html
    assert "3 validations: 1 compliant, 2 not compliant." in html
    assert "<td>global-equity</td>" in html
    assert "single-name-cap" in html and "weight_bounds.max" in html
    assert "rule desk (level 2)" in html
    assert "limit raised for the quarter" in html and ">cured<" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    status, html, _ = _run(
        capsys, "report", "daily", "--date", yesterday, "--database-url", database
    )
    assert status == 0 and "0 validations" in html and "No violation was opened." in html
    status, _, err = _run(capsys, "report", "daily", "--date", "03/12", "--database-url", database)
    assert status == 2 and "YYYY-MM-DD" in err


def test_the_policies_in_plain_words(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "policies.md"
    status, _, _ = _run(
        capsys, "policies", "docs", "--output", str(target), "--database-url", database
    )
    assert status == 0
    text = target.read_text(encoding="utf-8")
    names = [p["policy_name"] for p in [*core_policies(), TIGHT_CAP]]
    assert re.findall(r"^## (\S+)$", text, re.MULTILINE) == sorted(names)
    cap = _section(text, "single-name-cap")
    assert "Per-symbol weight bounds" in cap
    assert "`global-equity` Global equity: applies (firm-wide)" in cap
    assert "| `weight_bounds` | max | 0.1 | 0.1 | 0.1 |" in cap
    tight = _section(text, "tight-cap")
    assert "| constraint | limit | AGGRESSIVE | NORMAL | DEFENSIVE |" in tight
    assert "| `weight_bounds` | max | 0.1 | 0.08 | 0.05 |" in tight  # AGGRESSIVE: the default
    assert "Also scoped to other-book (not in the tree)." in tight
    assert "`global-equity` Global equity: does not apply" in tight


def _section(text: str, name: str) -> str:
    start = text.index(f"## {name}\n")
    end = text.find("\n## ", start + 1)
    found: Any = text[start : end if end > 0 else None]
    return str(found)


def test_the_daily_report_as_pdf(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    today = datetime.now(UTC).date()
    out = tmp_path / "daily.pdf"
    status, _, _ = _run(
        capsys,
        "report",
        "daily",
        "--date",
        today.isoformat(),
        "--format",
        "pdf",
        "--output",
        str(out),
        "--database-url",
        database,
    )
    assert status == 0
    assert out.read_bytes().startswith(b"%PDF-")
    # The same figures as the HTML page, read from an uncompressed rendering.
    store = Store.open(database)
    try:
        raw = daily_report_pdf(day_activity(store.engine, today), compress=False)
    finally:
        store.engine.dispose()
    text = raw.decode("latin-1")
    for expected in (
        f"Compliance report for {today.isoformat()}",
        "3 validations: 1 compliant, 2 not compliant.",
        "global-equity",
        "single-name-cap",
        "weight_bounds.max",
        "cured",
    ):
        assert expected in text, expected
    # A long reason wraps inside its table cell: its words are all there.
    assert all(word in text for word in "limit raised for the quarter".split())

    status, _, err = _run(capsys, "report", "daily", "--format", "pdf", "--database-url", database)
    assert status == 2 and "--output" in err

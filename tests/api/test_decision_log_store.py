"""The decision log's store: parts stored once, compressed; retention never removes a blob
still referenced; the log's command line (Parquet export, purge, replay)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from api.cli import main
from api.decision_log import logged_request
from api.store import LogFilter, Store, StoredPolicy
from api.store.tables import request_blobs
from engine import PolicyEngine
from models import PolicyDefinition, PolicyValidationRequest
from tests.builders import instrument, policy, request

CAP = policy("cap", {"kind": "weight_bounds", "max": 0.35})
WIDE = [instrument(f"S{k:03d}", 50.0 + k) for k in range(200)]


def _request(decision_id: str, buy: float) -> PolicyValidationRequest:
    """NAV 100,000 (AAA 200 at 100, cash 80,000) and 200 more names in the universe."""
    body = request(
        {"AAA": 200}, [("AAA", "BUY", buy)], cash=80_000.0, instruments=[instrument("AAA"), *WIDE]
    ).model_dump(mode="json")
    body["decision"]["decision_id"] = decision_id
    return PolicyValidationRequest.model_validate(body)


def _record(store: Store, decision_id: str, buy: float, stored: list[StoredPolicy]) -> None:
    req = _request(decision_id, buy)
    response = PolicyEngine().validate(req, [p.definition for p in stored])
    logged = logged_request(req, response, stored=stored, lineage=[])
    store.validations.record(
        response, portfolio_id="p-1", request_hash=decision_id, actor="t", log=logged
    )


def _blobs(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(request_blobs.c.part, sa.func.count()).group_by(request_blobs.c.part)
        ).all()
    return {part: int(n) for part, n in rows}


def test_parts_are_stored_once_and_compressed(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        stored = [store.policies.create(PolicyDefinition.model_validate(CAP), actor="t")]
        _record(store, "d-1", 100, stored)
        _record(store, "d-2", 200, stored)
        _record(store, "d-3", 200, stored)  # the same decision body bar its id
        # Only the decisions differ (their ids): the 201-name universe is stored once.
        counts = _blobs(store)
        assert counts["universe"] == 1 and counts["state"] == 1 and counts["decision"] == 3
        assert sum(counts.values()) == 3 + 7
        sizes = store.decision_log.sizes()
        assert sizes["entries"] == 3
        assert sizes["stored_bytes"] * 4 < sizes["json_bytes"]
        entries = store.decision_log.entries(LogFilter(decision_ids=["d-2"]))
        assert [e.decision_id for e in entries] == ["d-2"]
        assert len(entries[0].parts["universe"]) == 201
        assert entries[0].policy_versions == {"cap": 1}
    finally:
        store.engine.dispose()


def test_purge_removes_old_entries_and_only_unreferenced_blobs(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        stored = [store.policies.create(PolicyDefinition.model_validate(CAP), actor="t")]
        _record(store, "d-old", 100, stored)
        time.sleep(0.05)
        cutoff = datetime.now(UTC)
        time.sleep(0.05)
        _record(store, "d-new", 200, stored)
        dry = store.decision_log.purge(cutoff, dry_run=True)
        assert (dry.entries, dry.blobs) == (1, 1)  # d-old's decision; the rest is shared
        assert sum(_blobs(store).values()) == 9
        purged = store.decision_log.purge(cutoff)
        assert (purged.entries, purged.blobs) == (1, 1)
        assert [e.decision_id for e in store.decision_log.entries(LogFilter())] == ["d-new"]
        assert _blobs(store)["universe"] == 1  # still referenced by d-new
        assert store.validations.get("d-old")["decision_id"] == "d-old"  # the answer stays
        later = store.decision_log.purge(datetime.now(UTC) + timedelta(seconds=1))
        assert (later.entries, later.blobs) == (1, 8)
        assert _blobs(store) == {}
    finally:
        store.engine.dispose()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    try:
        return status, json.loads(out), err
    except json.JSONDecodeError:
        return status, out, err


def test_the_command_line_exports_replays_and_purges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    store = Store.open(url)
    stored = [store.policies.create(PolicyDefinition.model_validate(CAP), actor="t")]
    for decision_id, buy in [("d-1", 50), ("d-2", 120), ("d-3", 200)]:  # 25%, 32%, 40%
        _record(store, decision_id, buy, stored)
    store.engine.dispose()

    out = tmp_path / "log.parquet"
    status, _, err = _run(capsys, "log", "export", "--out", str(out), "--database-url", url)
    assert status == 0 and "3 logged validations" in err
    table = pq.read_table(out).to_pylist()
    assert [r["decision_id"] for r in table] == ["d-1", "d-2", "d-3"]
    assert [r["is_compliant"] for r in table] == [True, True, False]
    assert table[2]["violated_policies"] == ["cap"] and table[2]["adjusted"]
    assert json.loads(table[0]["policy_versions"]) == {"cap": 1}
    again = PolicyValidationRequest.model_validate_json(table[1]["request"])
    assert again == _request("d-2", 120)
    assert table[0]["logged_at"].tzinfo is not None

    same, answer, _ = _run(capsys, "replay", "--database-url", url)
    assert same == 0 and answer["summary"] == {
        "replayed": 3,
        "changed": 0,
        "by_change": {**dict.fromkeys(_CHANGES, 0), "unchanged": 3},
    }
    tighter = tmp_path / "policies"
    tighter.mkdir()
    (tighter / "cap.yaml").write_text(
        yaml.safe_dump(policy("cap", {"kind": "weight_bounds", "max": 0.30})), encoding="utf-8"
    )
    flipped, answer, err = _run(capsys, "replay", "--policies", str(tighter), "--database-url", url)
    assert flipped == 1 and "1 newly_blocked" in err
    assert {d["decision_id"]: d["change"] for d in answer["decisions"]} == {
        "d-1": "unchanged",
        "d-2": "newly_blocked",
        "d-3": "violations_changed",
    }
    for argv, needle in [
        (["replay", "--since", "yesterday"], "--since"),
        (["replay", "--pin", "cap=two"], "--pin"),
        (["replay", "--pin", "cap=7"], "--pin"),
        (["replay", "--global", "latest"], "--global"),
        (["replay", "--policies", str(tmp_path / "absent")], "no such file"),
        (["log", "export", "--out", str(tmp_path / "no" / "x.parquet")], "no such directory"),
        (["log", "export", "--out", str(out), "--since", "2026-01-01"], "--since"),
        (["log", "purge"], "PES_DECISION_LOG_RETENTION_DAYS"),
        (["log", "purge", "--older-than-days", "0"], "at least 1"),
    ]:
        status, _, err = _run(capsys, *argv, "--database-url", url)
        assert status == 2 and needle in err and "Traceback" not in err, (argv, err)

    status, purged, _ = _run(
        capsys, "log", "purge", "--older-than-days", "1", "--dry-run", "--database-url", url
    )
    assert status == 0 and purged["entries"] == 0 and purged["dry_run"]


_CHANGES = (
    "failed",
    "newly_blocked",
    "newly_allowed",
    "violations_changed",
    "adjustment_changed",
    "unchanged",
)


def test_replay_beyond_its_bound_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    store = Store.open(url)
    stored = [store.policies.create(PolicyDefinition.model_validate(CAP), actor="t")]
    for k in range(3):
        _record(store, f"d-{k}", 50, stored)
    store.engine.dispose()
    monkeypatch.setenv("PES_REPLAY_MAX_DECISIONS", "2")
    status, _, err = _run(capsys, "replay", "--database-url", url)
    assert status == 2 and "3 logged decisions match" in err
    status, answer, _ = _run(capsys, "replay", "--decision", "d-1", "--database-url", url)
    assert status == 0 and answer["summary"]["replayed"] == 1


def test_pes_analytics_counts_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """25%, 32% and 40% against a 35% cap: one violation, one blocked decision, one day."""
    url = f"sqlite:///{tmp_path / 'pes.db'}"
    store = Store.open(url)
    stored = [store.policies.create(PolicyDefinition.model_validate(CAP), actor="t")]
    for decision_id, buy in [("d-1", 50), ("d-2", 120), ("d-3", 200)]:
        _record(store, decision_id, buy, stored)
    store.engine.dispose()
    status = main(["analytics", "violations", "--by", "policy", "--database-url", url])
    out, _ = capsys.readouterr()
    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"policy_name": "cap", "violations": 1, "decisions": 1, "portfolios": 1}
    ]
    status = main(["analytics", "violations", "--by", "day", "--database-url", url])
    (day,) = [json.loads(line) for line in capsys.readouterr()[0].splitlines()]
    assert status == 0 and (day["validations"], day["blocked"], day["violations"]) == (3, 1, 1)
    status = main(["analytics", "blocking", "--database-url", url])
    (top,) = [json.loads(line) for line in capsys.readouterr()[0].splitlines()]
    assert status == 0 and top == {"policy_name": "cap", "blocked_decisions": 1, "portfolios": 1}
    for argv, needle in [
        (["analytics", "blocking", "--limit", "0"], "--limit"),
        (["analytics", "violations", "--by", "day", "--since", "2026-01-01"], "--since"),
    ]:
        status = main([*argv, "--database-url", url])
        err = capsys.readouterr()[1]
        assert status == 2 and needle in err and "Traceback" not in err, (argv, err)

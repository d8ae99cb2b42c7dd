"""pes backtest: a hand-counted history, A against B, workers, bad input, the report.

The tiny history (two portfolios, three days; NAV 1000 on the first day) and what each
policy set makes of it, counted by hand:

- set A: `name-cap` (each name at most 40%) and `sector-cap` (each sector at most 60%),
  strict; set B: the same with the name cap at 30%.
- p1, day 1: AAA 50%, Tech 70%: both policies breached (A and B). Decision p1-a sells 1 AAA
  (AAA 40%, Tech 60%): allowed under both (under B, AAA stays above 30% but less than before:
  passive).
- p1, day 2: AAA 40%: no breach under A, name-cap under B. Decision p1-b buys 1 CCC (CCC 30%,
  at B's cap): allowed under both.
- p1, day 3: AAA at 110: 440/1040 = 42.3%, Tech 61.5%: both breached under A and B.
- p2, day 1: AAA 20%, CCC 30%: no breach. Decision p2-a buys 2 AAA (AAA 40%): allowed by A;
  B blocks it and scales it back to 1 (AAA 30%; distance (0.3 - 0.4)^2 = 0.01); AAA rises
  100 -> 120 the next day, so B gives up 1 share x 20 = 20 on NAV 1000: 200 bp.
- p2, day 2: AAA 480/1080 = 44.4% (name-cap under A and B). Decision p2-b buys 3 BBB (Tech
  72.2%): both block it on sector-cap and scale it back to 1 BBB (2 would make Tech 63%);
  BBB falls 100 -> 90 the next day: compliance saves 2 x 10 = 20 on NAV 1080.
- p2, day 3: AAA 480/1050 = 45.7%, Tech 71.4%: both breached under A and B.

So, under A: name-cap breached on 4 portfolio-days, sector-cap on 3, one decision blocked;
under B: name-cap on 5, sector-cap on 3, two blocked; B against A: p2-a newly blocked.
"""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from api.backtest import PolicySet, load_history, run_backtest
from api.backtest.metrics import summarize
from api.cli import main
from api.files.policy_files import load_policies

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "examples" / "backtest"
D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)


def _state(d: date, pid: str, cash: float, rows: list[tuple[str, float, float]]) -> list[dict]:
    out = [{"date": d, "portfolio_id": pid, "symbol": "$CASH", "quantity": cash, "price": 1.0}]
    for symbol, quantity, price in rows:
        out.append(
            {"date": d, "portfolio_id": pid, "symbol": symbol, "quantity": quantity, "price": price}
        )
    return out


STATES = [
    *_state(D1, "p1", 100, [("AAA", 5, 100), ("BBB", 2, 100), ("CCC", 2, 100)]),
    *_state(D2, "p1", 200, [("AAA", 4, 100), ("BBB", 2, 100), ("CCC", 2, 100)]),
    *_state(D3, "p1", 100, [("AAA", 4, 110), ("BBB", 2, 100), ("CCC", 3, 100)]),
    *_state(D1, "p2", 500, [("AAA", 2, 100), ("CCC", 3, 100)]),
    *_state(D2, "p2", 300, [("AAA", 4, 120), ("BBB", 0, 100), ("CCC", 3, 100)]),
    *_state(D3, "p2", 0, [("AAA", 4, 120), ("BBB", 3, 90), ("CCC", 3, 100)]),
]
DECISIONS = [
    {"date": D1, "portfolio_id": "p1", "decision_id": "p1-a", "symbol": "AAA", "quantity": -1.0},
    {"date": D2, "portfolio_id": "p1", "decision_id": "p1-b", "symbol": "CCC", "quantity": 1.0},
    {"date": D1, "portfolio_id": "p2", "decision_id": "p2-a", "symbol": "AAA", "quantity": 2.0},
    {"date": D2, "portfolio_id": "p2", "decision_id": "p2-b", "symbol": "BBB", "quantity": 3.0},
]
INSTRUMENTS = [
    {"symbol": "AAA", "sector": "Tech"},
    {"symbol": "BBB", "sector": "Tech"},
    {"symbol": "CCC", "sector": "Energy"},
]


def _policies(name_cap: float) -> list[dict]:
    return [
        {"policy_name": "name-cap", "policy_type": "POSITION_LIMIT",
         "rules": {"constraints": [{"kind": "weight_bounds", "max": name_cap}]}},
        {"policy_name": "sector-cap", "policy_type": "SECTOR_LIMIT",
         "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.6}]}},
    ]  # fmt: skip


def _table(rows: list[dict]) -> pa.Table:
    """Rows as a table with every key any row has (from_pylist keeps the first row's only)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.Table.from_pydict({k: [r.get(k) for r in rows] for k in keys})


def _write(directory: Path, states=STATES, decisions=DECISIONS, instruments=INSTRUMENTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(states), directory / "states.parquet")
    pq.write_table(_table(decisions), directory / "decisions.parquet")
    if instruments is not None:
        pq.write_table(_table(instruments), directory / "instruments.parquet")
    return directory


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path, Path]:
    history = _write(tmp_path / "history")
    a, b = tmp_path / "A.yaml", tmp_path / "B.yaml"
    a.write_text(yaml.safe_dump(_policies(0.4)))
    b.write_text(yaml.safe_dump(_policies(0.3)))
    return history, a, b


def _sets(a: Path, b: Path) -> list[PolicySet]:
    return [PolicySet(p.stem, tuple(load_policies(p))) for p in (a, b)]


def _by_policy(summary: dict, name: str) -> dict[str, dict]:
    s = next(s for s in summary["policy_sets"] if s["policy_set"] == name)
    return {p["policy_name"]: p for p in s["policies"]} | {"": s}


def test_the_tiny_history_gives_the_hand_counted_breaches_and_blocks(tiny):
    history, a, b = tiny
    results = run_backtest(load_history(history), _sets(a, b), progress=False)
    summary = summarize(results)
    A, B = _by_policy(summary, "A"), _by_policy(summary, "B")
    assert (A["name-cap"]["breaches"], A["name-cap"]["days_in_breach"]) == (4, 4)
    assert (A["sector-cap"]["breaches"], A["sector-cap"]["days_in_breach"]) == (3, 3)
    assert A["name-cap"]["time_in_breach"] == round(4 / 6, 4)
    assert (B["name-cap"]["days_in_breach"], B["sector-cap"]["days_in_breach"]) == (5, 3)
    assert (A[""]["days_in_breach"], B[""]["days_in_breach"]) == (4, 5)
    assert (A[""]["portfolio_days"], A[""]["decisions"]) == (6, 4)
    assert (A[""]["blocked"], B[""]["blocked"]) == (1, 2)
    assert (A["sector-cap"]["blocked"], A["name-cap"]["blocked"]) == (1, 0)
    assert (B["sector-cap"]["blocked"], B["name-cap"]["blocked"]) == (1, 1)
    rows = {(r["policy_set"], r["decision_id"]): r for r in results.decisions}
    assert [rows["A", d]["outcome"] for d in ("p1-a", "p1-b", "p2-a", "p2-b")] == [
        "allowed", "allowed", "allowed", "adjusted"
    ]  # fmt: skip
    assert rows["B", "p2-a"]["outcome"] == "adjusted"
    assert rows["B", "p2-a"]["blocking_policies"] == ["name-cap"]
    assert rows["B", "p2-a"]["distance"] == pytest.approx(0.01, rel=1e-6)
    assert rows["B", "p2-a"]["cost"] == pytest.approx(20 / 1000)
    assert rows["A", "p2-b"]["blocking_policies"] == ["sector-cap"]
    assert rows["A", "p2-b"]["cost"] == pytest.approx(-20 / 1080)
    assert A[""]["cost_bp"] == pytest.approx(-1e4 * 20 / 1080, abs=1e-3)
    assert B[""]["cost_bp"] == pytest.approx(1e4 * (20 / 1000 - 20 / 1080), abs=1e-3)


def test_b_against_a_flips_exactly_the_hand_computed_decision(tiny):
    history, a, b = tiny
    summary = summarize(run_backtest(load_history(history), _sets(a, b), progress=False))
    [c] = summary["comparisons"]
    assert (c["base"], c["candidate"]) == ("A", "B")
    assert (c["newly_blocked"], c["newly_allowed"], c["both_blocked"]) == (1, 0, 1)
    assert [(f["decision_id"], f["change"]) for f in c["changed_decisions"]] == [
        ("p2-a", "newly_blocked")
    ]
    assert c["cost_bp_difference"] == pytest.approx(1e4 * 20 / 1000, abs=1e-3)


def _subset(tmp_path: Path, portfolios: int, days: int) -> Path:
    history = SHIPPED / "history"
    states = pq.read_table(history / "states.parquet").to_pylist()
    keep_p = sorted({r["portfolio_id"] for r in states})[:portfolios]
    keep_d = sorted({r["date"] for r in states})[:days]
    pick = [r for r in states if r["portfolio_id"] in keep_p and r["date"] in keep_d]
    decisions = [
        r for r in pq.read_table(history / "decisions.parquet").to_pylist()
        if r["portfolio_id"] in keep_p and r["date"] in keep_d
    ]  # fmt: skip
    instruments = pq.read_table(history / "instruments.parquet").to_pylist()
    return _write(tmp_path / "subset", pick, decisions, instruments)


def test_the_shipped_history_gives_the_same_answers_on_a_two_worker_cluster_as_in_process(
    tmp_path, dask_cluster
):
    # The session's 2-worker LocalCluster (tests/api/conftest.py).
    assert len(dask_cluster.scheduler_info()["workers"]) == 2
    history = load_history(_subset(tmp_path, portfolios=2, days=5))
    sets = [PolicySet(n, tuple(load_policies(SHIPPED / f"policies-{n}.yaml"))) for n in "ab"]
    here = run_backtest(history, sets, progress=False)
    there = run_backtest(history, sets, client=dask_cluster, progress=False)
    assert here.decisions == there.decisions
    assert here.breaches == there.breaches
    assert any(d["outcome"] == "adjusted" for d in here.decisions)


def test_the_command_gives_the_same_results_on_one_worker_and_two_and_writes_the_report(
    tiny, tmp_path, capsys, dask_cluster
):
    # One worker: a LocalCluster the command starts; two: the session's, by `--scheduler`.
    history, a, b = tiny
    out = {}
    where = {1: ["--workers", "1"], 2: ["--scheduler", dask_cluster.scheduler.address]}
    assert len(dask_cluster.scheduler_info()["workers"]) == 2
    for workers in (1, 2):
        argv = ["backtest", str(history), "--policies", str(a), "--policies", str(b),
                *where[workers], "--out", str(tmp_path / f"w{workers}"), "--format", "json",
                "-q"]  # fmt: skip
        if workers == 2:
            argv += ["--report", str(tmp_path / "report.html")]
        assert main(argv) == 0
        out[workers] = json.loads(capsys.readouterr().out)
        for name in ("days", "breaches", "decisions"):
            out[workers, name] = pq.read_table(tmp_path / f"w{workers}" / f"{name}.parquet")
    assert out[1] == out[2]
    for name in ("days", "breaches", "decisions"):
        assert out[1, name].equals(out[2, name]), name
    assert out[1, "decisions"].num_rows == 8
    assert out[1]["comparisons"][0]["newly_blocked"] == 1
    page = (tmp_path / "report.html").read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 3
    for image in images:
        assert base64.b64decode(image.split('"')[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "Breaches over time" in page and "Cost of compliance" in page and "p2-a" in page


def _bad(argv: list[str], capsys) -> str:
    assert main(["backtest", *argv, "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def _with(rows: list[dict], k: int, **change) -> list[dict]:
    out = [dict(r) for r in rows]
    out[k].update(change)
    return out


@pytest.mark.parametrize(
    ("states", "decisions", "instruments", "expected"),
    [
        (STATES, [{k: v for k, v in r.items() if k != "quantity"} for r in DECISIONS],
         INSTRUMENTS, "decisions.parquet: no column 'quantity'"),
        (_with(STATES, 2, price=-5.0), DECISIONS, INSTRUMENTS,
         "states.parquet: row 3, column 'price': must be a number above 0"),
        (_with(STATES, 1, quantity=None), DECISIONS, INSTRUMENTS,
         "states.parquet: row 2, column 'quantity': missing"),
        (_with([{**r, "date": r["date"].isoformat()} for r in STATES], 0, date="March 2nd"),
         [{**r, "date": r["date"].isoformat()} for r in DECISIONS], INSTRUMENTS,
         "states.parquet: row 1, column 'date': 'March 2nd' is not a date"),
        (STATES, _with(DECISIONS, 3, date=D3, symbol="DDD"), INSTRUMENTS,
         "decisions.parquet: row 4, column 'symbol': DDD has no price in the state of p2"),
        (STATES, _with(DECISIONS, 1, portfolio_id="p9"), INSTRUMENTS,
         "decisions.parquet: row 2: no state of portfolio p9"),
        (STATES, _with(DECISIONS, 1, decision_id="p1-a"), INSTRUMENTS,
         "decisions.parquet: row 2, column 'decision_id': p1-a is also a decision of p1"),
        (STATES, DECISIONS, INSTRUMENTS[:2],
         "states.parquet: column 'symbol': no reference data for CCC"),
        (STATES, DECISIONS, None, "instruments.parquet: no such file"),
    ],
)  # fmt: skip
def test_bad_history_exits_2_naming_file_row_and_column(
    tmp_path, capsys, states, decisions, instruments, expected
):
    history = _write(tmp_path / "bad", states, decisions, instruments)
    policies = tmp_path / "A.yaml"
    policies.write_text(yaml.safe_dump(_policies(0.4)))
    err = _bad([str(history), "--policies", str(policies)], capsys)
    assert expected in err
    assert "Traceback" not in err


def test_bad_policies_and_a_missing_history_exit_2(tiny, tmp_path, capsys):
    history, a, _ = tiny
    broken = tmp_path / "broken.yaml"
    broken.write_text("- policy_name: x\n  policy_type: NOPE\n")
    assert "broken.yaml" in _bad([str(history), "--policies", str(broken)], capsys)
    assert "not a directory" in _bad([str(tmp_path / "nowhere"), "--policies", str(a)], capsys)
    assert "a second set named 'A'" in _bad(
        [str(history), "--policies", str(a), "--policies", str(a)], capsys
    )
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "states.parquet").write_text("not parquet")
    assert "not a readable Parquet file" in _bad(
        [str(tmp_path / "junk"), "--policies", str(a)], capsys
    )


def test_bad_reference_data_exits_2_naming_the_row_and_column(tmp_path, capsys):
    instruments = [*INSTRUMENTS[:2], {"symbol": "CCC", "sector": "Energy", "lot_size": -1.0}]
    history = _write(tmp_path / "bad", instruments=instruments)
    policies = tmp_path / "A.yaml"
    policies.write_text(yaml.safe_dump(_policies(0.4)))
    err = _bad([str(history), "--policies", str(policies)], capsys)
    assert "instruments.parquet: row 3, column 'lot_size'" in err
    universe = tmp_path / "universe.yaml"
    universe.write_text(yaml.safe_dump({"id": "u", "instruments": [
        {"symbol": "AAA", "price": 1.0, "sector": "Tech"}]}))  # fmt: skip
    err = _bad([str(history), "--policies", str(policies), "--universe", str(universe)], capsys)
    assert "no reference data for BBB, CCC" in err


def test_a_universe_file_gives_the_same_answers_as_instruments_parquet(tiny, tmp_path):
    history, a, b = tiny
    universe = tmp_path / "universe.yaml"
    universe.write_text(yaml.safe_dump({"id": "u", "instruments": [
        {**i, "price": 1.0} for i in INSTRUMENTS]}))  # fmt: skip
    from api.backtest.history import instruments_from_universe

    listed = run_backtest(load_history(history), _sets(a, b), progress=False)
    given = load_history(history, instruments=instruments_from_universe(universe))
    assert run_backtest(given, _sets(a, b), progress=False).decisions == listed.decisions


def test_a_policy_the_engine_cannot_evaluate_fails_closed_and_is_counted(tiny, tmp_path):
    history = tiny[0]
    beta = tmp_path / "beta.yaml"
    constraint = {"kind": "exposure", "attribute": "beta", "max": 1.2}
    policy = {"policy_name": "beta-band", "policy_type": "RISK_LIMIT",
              "rules": {"constraints": [constraint]}}  # fmt: skip
    beta.write_text(yaml.safe_dump([policy]))
    results = run_backtest(
        load_history(history), [PolicySet("beta", tuple(load_policies(beta)))], progress=False
    )
    summary = summarize(results)["policy_sets"][0]
    assert summary["failed"] == 6 + 4  # every portfolio-day and every decision
    assert all(d["outcome"] == "failed" and "beta" in d["error"] for d in results.decisions)

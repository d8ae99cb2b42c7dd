"""`pes check-all` on a real 2-worker LocalCluster, held against the single-request engine.

One cluster serves the test process (the session's `dask_cluster`, started once: a
LocalCluster costs seconds); every run passes its address as `--scheduler`. The answers are
compared with `PolicyEngine.validate` run here, per portfolio, on a request built
independently of the command (a decision with no trades, mode validate, the whole universe's
instruments).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from api.cli import main
from api.files.policy_files import load_policies
from api.store import Store
from engine import PolicyEngine
from engine.resolve.global_policy import GlobalControls
from models import Instrument, PolicyDefinition, PolicyValidationRequest, PortfolioNode, Universe

if TYPE_CHECKING:
    from distributed import Client

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "check-all"
UNIVERSE = Universe.model_validate(yaml.safe_load((EXAMPLE / "universe.yaml").read_text()))
INSTRUMENTS = {i.symbol: i for i in UNIVERSE.instruments}


@pytest.fixture
def scheduler(dask_cluster: Client) -> str:
    """The address of the session's 2-worker LocalCluster (tests/api/conftest.py)."""
    assert len(dask_cluster.scheduler_info()["workers"]) == 2
    address: str = dask_cluster.scheduler.address
    return address


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _check_all(
    capsys: pytest.CaptureFixture[str], scheduler: str, *argv: str | Path
) -> tuple[int, dict[str, Any], str]:
    status, out, err = _run(
        capsys, "check-all", *argv, "--scheduler", scheduler, "--format", "json", "--no-progress"
    )
    return status, json.loads(out) if out else {}, err


def _rows(path: Path) -> list[tuple[Any, ...]]:
    table = pq.read_table(path).to_pylist()
    return sorted(
        (
            r["portfolio_id"],
            r["policy_name"],
            r["violation_type"],
            r["subject"],
            round(r["observed"], 9),
            r["severity"],
            r["breach"],
            r["description"],
        )
        for r in table
    )


def _oracle(
    books: Mapping[str, Mapping[str, float]],
    cash: Mapping[str, float],
    policies: Sequence[PolicyDefinition],
    *,
    instruments: Sequence[Instrument] = UNIVERSE.instruments,
    lineages: Mapping[str, Sequence[PortfolioNode]] | None = None,
    controls: GlobalControls | None = None,
) -> list[tuple[Any, ...]]:
    """Every portfolio through the single-request engine: its violations as rows."""
    engine = PolicyEngine()
    rows = []
    for pid, book in books.items():
        request = PolicyValidationRequest.model_validate(
            {
                "decision": {"decision_id": f"check-{pid}", "portfolio_id": pid, "trades": []},
                "portfolio_state": {
                    "portfolio_id": pid,
                    "cash": cash[pid],
                    "positions": [{"symbol": s, "quantity": q} for s, q in book.items()],
                    "instruments": [i.model_dump() for i in instruments],
                },
                "mode": "validate",
            }
        )
        response = engine.validate(
            request, policies, lineage=(lineages or {}).get(pid, ()), controls=controls
        )
        rows += [
            (
                pid,
                v.policy_name,
                v.violation_type,
                v.subject,
                round(v.observed, 9),
                v.severity.value,
                v.breach.value,
                v.description,
            )
            for v in response.violations
        ]
    return sorted(rows)


def _write(path: Path, columns: dict[str, list[Any]]) -> Path:
    table = pa.table(columns)
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def _readme_command() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Firm-wide checks\n")
    block = re.search(r"```bash\n(.*?)```", readme[start:], re.DOTALL)
    assert block is not None
    line = next(x for x in block.group(1).replace("\\\n", " ").splitlines() if "check-all" in x)
    argv = shlex.split(line)
    assert argv[:2] == ["pes", "check-all"]
    return argv[2:]


def test_the_readme_example_on_csv_and_parquet_matches_the_single_request_engine(
    tmp_path: Path,
    scheduler: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    argv = _readme_command()
    out = tmp_path / "breaches.parquet"
    argv[argv.index("--output") + 1] = str(out)
    status, summary, err = _check_all(capsys, scheduler, *argv)
    assert status == 1, err
    positions = pacsv.read_csv(EXAMPLE / "positions.csv").to_pylist()
    cash = {r["portfolio_id"]: r["cash"] for r in pacsv.read_csv(EXAMPLE / "cash.csv").to_pylist()}
    books: dict[str, dict[str, float]] = {}
    for r in positions:
        books.setdefault(r["portfolio_id"], {})[r["symbol"]] = r["quantity"]
    expected = _oracle(books, cash, load_policies(REPO / "examples/policies/core.yaml"))
    assert _rows(out) == expected and expected
    assert summary["portfolios_checked"] == 4
    assert summary["portfolios_in_breach"] == len({r[0] for r in expected})
    assert summary["breaches"] == len(expected)

    # The same holdings as Parquet, cash as rows of the positions file: the same answer.
    parquet = _write(
        tmp_path / "positions.parquet",
        {
            "portfolio_id": [r["portfolio_id"] for r in positions] + list(cash),
            "symbol": [r["symbol"] for r in positions] + ["$CASH"] * len(cash),
            "quantity": [float(r["quantity"]) for r in positions] + list(cash.values()),
        },
    )
    again = tmp_path / "again.parquet"
    status, summary2, err = _check_all(
        capsys,
        scheduler,
        parquet,
        "--universe-file",
        EXAMPLE / "universe.yaml",
        "--policies",
        REPO / "examples/policies/core.yaml",
        "--output",
        again,
        "--partition-size",
        "1",
    )
    assert status == 1, err
    assert summary2["partitions"] == 4
    assert _rows(again) == expected


RANDOM_POLICIES: list[dict[str, Any]] = [
    {"policy_name": "name-cap", "policy_type": "POSITION_LIMIT",
     "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.2, "min": -0.05}]}},
    {"policy_name": "sector-caps", "policy_type": "SECTOR_LIMIT",
     "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.4}]}},
    {"policy_name": "sector-gross", "policy_type": "SECTOR_LIMIT", "enforcement_level": "advisory",
     "rules": {"constraints": [
         {"kind": "group_limit", "attribute": "sector", "max": 0.45, "measure": "gross"}]}},
    {"policy_name": "cash-band", "policy_type": "INVESTMENT_MANDATE",
     "rules": {"constraints": [{"kind": "cash", "min": 0.0, "max": 0.3}]}},
    {"policy_name": "beta-band", "policy_type": "RISK_LIMIT", "enforcement_level": "advisory",
     "rules": {"constraints": [{"kind": "exposure", "attribute": "beta", "min": 0.6, "max": 1.3}]}},
    {"policy_name": "top-3", "policy_type": "POSITION_LIMIT",
     "rules": {"constraints": [{"kind": "concentration", "top_k": 3, "max": 0.55}]}},
    {"policy_name": "gross", "policy_type": "RISK_LIMIT",
     "rules": {"constraints": [{"kind": "gross_exposure", "max": 1.05}]}},
    {"policy_name": "no-utilities", "policy_type": "REGULATORY",
     "rules": {"constraints": [{"kind": "restricted", "symbols": ["NEE"]}]}},
    {"policy_name": "turnover-cap", "policy_type": "RISK_LIMIT",
     "rules": {"constraints": [{"kind": "turnover", "max": 0.05},
                               {"kind": "restricted", "symbols": ["PFE"], "mode": "no_buy"}]}},
    {"policy_name": "few-names", "policy_type": "INVESTMENT_MANDATE",
     "enforcement_level": "monitor",
     "rules": {"constraints": [{"kind": "max_positions", "max": 9}]}},
]  # fmt: skip


def _random_books(
    rng: np.random.Generator, count: int
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    symbols = sorted(set(INSTRUMENTS) - {"NEE"})  # the restricted name, held by a few only
    books, cash = {}, {}
    for k in range(count):
        names = list(rng.choice(symbols, size=int(rng.integers(5, 11)), replace=False))
        names += ["NEE"] if rng.random() < 0.1 else []
        weights = rng.dirichlet(np.full(len(names), 12.0)) * rng.uniform(0.75, 1.0)
        if rng.random() < 0.2:
            weights[0] = -0.04 if rng.random() < 0.5 else -0.08
        nav = 1_000_000.0
        book = {
            str(s): float(round(w * nav / INSTRUMENTS[str(s)].price))
            for s, w in zip(names, weights, strict=True)
        }
        pid = f"pf-{k:03d}"
        books[pid] = book
        cash[pid] = nav - sum(q * INSTRUMENTS[s].price for s, q in book.items())
    return books, cash


def test_random_portfolios_get_the_single_request_engines_answers(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    books, cash = _random_books(np.random.default_rng(20261203), 80)
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(yaml.safe_dump(RANDOM_POLICIES), encoding="utf-8")
    rows = [(p, s, q) for p, book in books.items() for s, q in book.items()]
    positions = _write(
        tmp_path / "positions.parquet",
        {"portfolio_id": [r[0] for r in rows], "symbol": [r[1] for r in rows],
         "quantity": [r[2] for r in rows]},
    )  # fmt: skip
    cash_file = _write(
        tmp_path / "cash.csv", {"portfolio_id": list(cash), "cash": list(cash.values())}
    )
    out = tmp_path / "breaches.parquet"
    status, summary, err = _check_all(
        capsys, scheduler, positions, "--cash", cash_file, "--universe-file",
        EXAMPLE / "universe.yaml", "--policies", policy_file, "--output", out,
        "--partition-size", "16",
    )  # fmt: skip
    expected = _oracle(books, cash, load_policies(policy_file))
    assert status == 1, err
    assert _rows(out) == expected
    assert summary["portfolios_in_breach"] == len({r[0] for r in expected}) < 80
    # Both paths ran: the screen cleared some portfolios, the engine reported the others.
    assert summary["screened_compliant"] > 0 and summary["checked_by_single_request_engine"] > 0
    assert summary["partitions"] == 5
    by_policy = summary["breaches_by_policy"]
    assert "turnover-cap" not in by_policy  # nothing traded: a trade limit cannot breach
    assert by_policy["name-cap"]["breaches"] == sum(1 for r in expected if r[1] == "name-cap")


FUND_POLICIES: list[dict[str, Any]] = [
    {"policy_name": "firm-cash-floor", "policy_type": "INVESTMENT_MANDATE",
     "scope": {"portfolios": ["*"]},
     "rules": {"constraints": [{"kind": "cash", "min": 0.02}]}},
    {"policy_name": "equity-fund-name-cap", "policy_type": "POSITION_LIMIT",
     "scope": {"portfolios": ["equity-fund"]},
     "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.08}]}},
    {"policy_name": "acme-sector-cap", "policy_type": "SECTOR_LIMIT",
     "scope": {"portfolios": ["acme"]},
     "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.5}]}},
]  # fmt: skip


def test_a_fund_level_policy_of_the_stored_tree_binds_its_portfolios_only(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'pes.db'}"
    tree = yaml.safe_load((REPO / "examples/portfolios/acme.yaml").read_text())
    tree.append({"portfolio_id": "balanced-book", "name": "Balanced", "parent_id": "acme"})
    (tmp_path / "tree.yaml").write_text(yaml.safe_dump(tree), encoding="utf-8")
    (tmp_path / "policies.yaml").write_text(yaml.safe_dump(FUND_POLICIES), encoding="utf-8")
    for what, path in (("portfolios", "tree.yaml"), ("policies", "policies.yaml")):
        assert _run(capsys, what, "apply", tmp_path / path, "--database-url", db)[0] == 0
    universe = EXAMPLE / "universe.yaml"
    assert _run(capsys, "universes", "apply", universe, "--database-url", db)[0] == 0
    book = {"AAPL": 500.0, "MSFT": 250.0, "JPM": 500.0, "XOM": 900.0, "JNJ": 600.0}
    books = {p: dict(book) for p in ("global-equity", "us-equity", "balanced-book")}
    cash = {"global-equity": 200_000.0, "us-equity": 150_000.0, "balanced-book": 250_000.0}
    rows = [(p, s, q) for p, b in books.items() for s, q in b.items()]
    positions = _write(
        tmp_path / "positions.csv",
        {"portfolio_id": [r[0] for r in rows] + list(cash),
         "symbol": [r[1] for r in rows] + ["$CASH"] * 3,
         "quantity": [r[2] for r in rows] + list(cash.values())},
    )  # fmt: skip
    out = tmp_path / "breaches.parquet"
    status, summary, err = _check_all(
        capsys, scheduler, positions, "--universe", "check-all-example@1",
        "--database-url", db, "--output", out,
    )  # fmt: skip
    assert status == 1, err
    store = Store.open(db)
    try:
        lineages = {p: store.portfolios.lineage(p) for p in books}
        current = store.global_policy.current()
        stored = [p.definition for p in store.policies.list()]
    finally:
        store.engine.dispose()
    expected = _oracle(
        books, cash, stored, lineages=lineages,
        controls=GlobalControls(current.policy, current.version),
    )  # fmt: skip
    assert _rows(out) == expected
    fund = {r[0] for r in expected if r[1] == "equity-fund-name-cap"}
    assert fund == {"global-equity", "us-equity"}
    # Three groups: the equity fund's two portfolios share their policies, but us-equity
    # has the tree's default benchmark and global-equity none.
    assert summary["groups"] == 3

    status, _, err = _check_all(
        capsys, scheduler, positions, "--universe", "check-all-example@7", "--database-url", db
    )
    assert status == 2
    assert err.startswith("pes check-all: --universe check-all-example@7: no version 7 of")

    # A portfolio the registered tree does not hold would lose its policies: refused.
    stray = _write(
        tmp_path / "stray.csv",
        {"portfolio_id": ["us-equity", "ghost"], "symbol": ["$CASH", "$CASH"],
         "quantity": [1000.0, 1000.0]},
    )  # fmt: skip
    status, _, err = _check_all(
        capsys, scheduler, stray, "--universe-file", EXAMPLE / "universe.yaml",
        "--database-url", db,
    )  # fmt: skip
    assert status == 2
    assert err.strip() == (
        f"pes check-all: {stray}: row 2, column portfolio_id: 'ghost' is not in the "
        "registered portfolio tree (pes portfolios list)"
    )


@pytest.mark.parametrize(
    ("columns", "cash", "message"),
    [
        (
            {"portfolio_id": ["a"], "symbol": ["AAPL"]},
            None,
            "{pos}: missing column 'quantity' (columns: portfolio_id, symbol); expected "
            "portfolio_id, symbol, quantity",
        ),
        (
            {"portfolio_id": ["a", "a"], "symbol": ["AAPL", "ZZZZ"], "quantity": [1.0, 2.0]},
            {"portfolio_id": ["a"], "cash": [1000.0]},
            "{pos}: row 2, column symbol: unknown symbol ZZZZ (no instrument in the universe "
            "and no price)",
        ),
        (
            {"portfolio_id": ["a", "a"], "symbol": ["AAPL", "MSFT"], "quantity": [1.0, "nan"]},
            {"portfolio_id": ["a"], "cash": [1000.0]},
            "{pos}: row 2, column quantity: nan is not a finite number",
        ),
        (
            {"portfolio_id": ["a", "b"], "symbol": ["AAPL", "MSFT"], "quantity": [1.0, 2.0]},
            {"portfolio_id": ["a"], "cash": [1000.0]},
            "{pos}: row 2, column portfolio_id: portfolio 'b' has no cash (no row in {cash}; "
            "pass --missing-cash zero to count it as 0)",
        ),
        (
            {"portfolio_id": ["a"], "symbol": ["AAPL"], "quantity": [1.0]},
            {"portfolio_id": ["a"], "cash": ["lots"]},
            "{cash}: row 1, column cash: 'lots' is not a number",
        ),
    ],
    ids=["missing-column", "unknown-symbol", "non-finite-quantity", "no-cash", "bad-cash"],
)
def test_bad_input_exits_2_naming_file_row_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    columns: dict[str, list[Any]],
    cash: dict[str, list[Any]] | None,
    message: str,
) -> None:
    pos = tmp_path / "positions.csv"
    pos.write_text(
        ",".join(columns) + "\n"
        + "\n".join(",".join(str(v) for v in row) for row in zip(*columns.values(), strict=True))
        + "\n",
        encoding="utf-8",
    )  # fmt: skip
    argv: list[str | Path] = ["check-all", pos, "--universe-file", EXAMPLE / "universe.yaml"]
    argv += ["--policies", REPO / "examples/policies/core.yaml", "--no-progress"]
    cash_file = tmp_path / "cash.csv"
    if cash is not None:
        _write(cash_file, cash)
        argv += ["--cash", cash_file]
    status, out, err = _run(capsys, *argv)
    assert status == 2 and out == ""
    assert err == "pes check-all: " + message.format(pos=pos, cash=cash_file) + "\n"


def test_an_unreachable_scheduler_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dask retries a refused connection until the timeout: a second is enough to be refused.
    monkeypatch.setattr("api.cluster.client.CONNECT_TIMEOUT", "1s")
    status, out, err = _run(
        capsys, "check-all", EXAMPLE / "positions.csv", "--cash", EXAMPLE / "cash.csv",
        "--universe-file", EXAMPLE / "universe.yaml",
        "--policies", REPO / "examples/policies/core.yaml",
        "--scheduler", "tcp://127.0.0.1:9",
    )  # fmt: skip
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "pes check-all: cannot reach the Dask scheduler at tcp://127.0.0.1:9"
    )


def test_a_portfolio_the_engine_refuses_exits_2_naming_it(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    positions = _write(
        tmp_path / "positions.csv",
        {"portfolio_id": ["fine", "fine", "sunk", "sunk"],
         "symbol": ["AAPL", "$CASH", "AAPL", "$CASH"],
         "quantity": [10.0, 100_000.0, 10.0, -50_000.0]},
    )  # fmt: skip
    status, _, err = _check_all(
        capsys, scheduler, positions, "--universe-file", EXAMPLE / "universe.yaml",
        "--policies", REPO / "examples/policies/core.yaml",
    )  # fmt: skip
    assert status == 2
    assert err.startswith(
        f"pes check-all: {positions}: row 3: portfolio 'sunk': portfolio_state: NAV = cash + "
        "sum of position values = -48100 must be > 0"
    )
    assert len(err.splitlines()) == 1


def test_prices_from_the_positions_file_without_a_universe(
    tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]
) -> None:
    caps = [{"policy_name": "name-cap", "policy_type": "POSITION_LIMIT",
             "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.3}]}}]  # fmt: skip
    policy_file = tmp_path / "caps.yaml"
    policy_file.write_text(yaml.safe_dump(caps), encoding="utf-8")
    positions = _write(
        tmp_path / "positions.csv",
        {"portfolio_id": ["a", "a", "b", "b"], "symbol": ["X", "Y", "X", "Y"],
         "quantity": [100.0, 50.0, 10.0, 10.0], "price": [20.0, 10.0, 20.0, 10.0]},
    )  # fmt: skip
    cash = {"a": 500.0, "b": 1000.0}
    cash_file = _write(tmp_path / "cash.csv", {"portfolio_id": ["a", "b"], "cash": [500.0, 1000.0]})
    out = tmp_path / "breaches.parquet"
    status, summary, err = _check_all(
        capsys, scheduler, positions, "--cash", cash_file, "--policies", policy_file,
        "--output", out,
    )  # fmt: skip
    assert status == 1, err
    assert summary["portfolios_in_breach"] == 1
    bare = [Instrument(symbol="X", price=20.0), Instrument(symbol="Y", price=10.0)]
    books = {"a": {"X": 100.0, "Y": 50.0}, "b": {"X": 10.0, "Y": 10.0}}
    expected = _oracle(books, cash, load_policies(policy_file), instruments=bare)
    assert _rows(out) == expected
    assert {r[0] for r in expected} == {"a"}  # X is 2000 / 3000 of a's NAV

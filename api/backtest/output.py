"""The back-test's results as Parquet: days, breaches and decisions, one file each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.backtest.run import Results

__all__ = ["write_results"]


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    key = [("policy_set", pa.string()), ("portfolio_id", pa.string()), ("date", pa.date32())]
    return {
        "days": pa.schema(
            [*key, ("nav", pa.float64()), ("breached_rows", pa.int64()), ("error", pa.string())]
        ),
        "breaches": pa.schema(
            [
                *key,
                ("policy_name", pa.string()),
                ("enforcement_level", pa.string()),
                ("rows", pa.int64()),
                ("max_excess", pa.float64()),
            ]
        ),
        "decisions": pa.schema(
            [
                *key,
                ("seq", pa.int64()),
                ("decision_id", pa.string()),
                ("trades", pa.int64()),
                ("outcome", pa.string()),
                ("compliant", pa.bool_()),
                ("blocking_policies", pa.list_(pa.string())),
                ("violations", pa.int64()),
                ("active_breaches", pa.int64()),
                ("method", pa.string()),
                ("distance", pa.float64()),
                ("nav", pa.float64()),
                ("cost_pnl", pa.float64()),
                ("cost", pa.float64()),
                ("error", pa.string()),
            ]
        ),
    }


def write_results(results: Results, directory: Path) -> list[Path]:
    """`days.parquet`, `breaches.parquet`, `decisions.parquet` in `directory` (created)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in _schemas().items():
        rows = getattr(results, name)
        columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
        path = directory / f"{name}.parquet"
        pq.write_table(pa.Table.from_pydict(columns, schema=schema), path, compression="zstd")
        written.append(path)
    return written

"""The decision log as Parquet: one row per logged validation.

Columns: `validation_id`, `decision_id`, `portfolio_id`, `logged_at` (UTC), `actor`,
`is_compliant`, `compliance_score`, `violations` (how many), `violated_policies` (their
names, sorted, distinct), `adjusted` (an adjustment was proposed), `distance` (its
distance, or null), `policy_versions` (JSON: name -> version of the effective set),
`global_policy_version`, `reference_data` (JSON, or null), `request` (JSON: the request
rebuilt, registered reference data pinned to the versions used) and `response` (JSON: the
stored answer). Written a page at a time, so the log never has to fit in memory.
pyarrow is the optional `log` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from api.decision_log.parts import replay_inputs
from api.store import DecisionLogStore, LogEntry, LogFilter

__all__ = ["PAGE", "MissingDependency", "export_parquet"]

PAGE = 500
"""Entries read and written per row group."""


class MissingDependency(RuntimeError):
    """An optional package this needs is not installed (the message says which extra)."""


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("validation_id", pa.int64()),
            ("decision_id", pa.string()),
            ("portfolio_id", pa.string()),
            ("logged_at", pa.timestamp("us", tz="UTC")),
            ("actor", pa.string()),
            ("is_compliant", pa.bool_()),
            ("compliance_score", pa.float64()),
            ("violations", pa.int32()),
            ("violated_policies", pa.list_(pa.string())),
            ("adjusted", pa.bool_()),
            ("distance", pa.float64()),
            ("policy_versions", pa.string()),
            ("global_policy_version", pa.int64()),
            ("reference_data", pa.string()),
            ("request", pa.string()),
            ("response", pa.string()),
        ]
    )


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def row(entry: LogEntry) -> dict[str, Any]:
    """One entry as a row of the export."""
    body = entry.response
    adjusted = body.get("adjusted_decision")
    request = replay_inputs(entry.parts, entry.reference_data).request
    return {
        "validation_id": entry.validation_id,
        "decision_id": entry.decision_id,
        "portfolio_id": entry.portfolio_id,
        "logged_at": entry.logged_at,
        "actor": entry.actor,
        "is_compliant": body["is_compliant"],
        "compliance_score": body["compliance_score"],
        "violations": len(body["violations"]),
        "violated_policies": sorted({v["policy_name"] for v in body["violations"]}),
        "adjusted": adjusted is not None,
        "distance": None if adjusted is None else adjusted["distance"],
        "policy_versions": _json(entry.policy_versions),
        "global_policy_version": entry.global_policy_version,
        "reference_data": None if entry.reference_data is None else _json(entry.reference_data),
        "request": _json(request.model_dump(mode="json", exclude_none=True)),
        "response": _json(body),
    }


def export_parquet(log: DecisionLogStore, where: LogFilter, out: Path) -> int:
    """Write the entries `where` selects to `out` (Parquet, zstd); returns how many."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependency(
            "the Parquet export needs pyarrow: pip install -e '.[log]'"
        ) from exc
    schema = _schema()
    written = 0
    after: int | None = None
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        while True:
            entries = log.entries(where, limit=PAGE, after=after)
            if not entries:
                break
            rows = [row(e) for e in entries]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            written += len(rows)
            after = entries[-1].validation_id
            if len(entries) < PAGE:
                break
    return written

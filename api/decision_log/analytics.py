"""Analytics over the stored validations and violations, computed by DuckDB.

The rows a question needs (validations and their violations, narrow columns, within the
time range asked) are read from the store through SQLAlchemy, on SQLite and PostgreSQL
alike, into Arrow tables; DuckDB answers the question over them in memory. Questions:
violations counted per policy, per portfolio or per day (`violations`), and the rules
that blocked the most decisions (`blocking`: non-compliant validations in which the policy
had a strict violation). DuckDB and pyarrow are the optional `log` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from api.decision_log.export import MissingDependency
from api.store import Store
from api.store.tables import policy_violations, validations

__all__ = ["Grouping", "blocking", "violations"]

Grouping = Literal["policy", "portfolio", "day"]

_GROUPS: dict[Grouping, str] = {
    "policy": "policy_name",
    "portfolio": "portfolio_id",
    "day": "day",
}


def _modules() -> tuple[Any, Any]:
    try:
        import duckdb
        import pyarrow as pa
    except ImportError as exc:
        raise MissingDependency(
            "the analytics need duckdb and pyarrow: pip install -e '.[log]'"
        ) from exc
    return duckdb, pa


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    out = []
    if since is not None:
        out.append(column >= since)
    if until is not None:
        out.append(column < until)
    return out


def _tables(store: Store, since: datetime | None, until: datetime | None) -> tuple[Any, Any]:
    """(validations, violations) as Arrow tables, each with its UTC `day`."""
    _, pa = _modules()
    v, p = validations, policy_violations
    with store.engine.connect() as conn:
        checked = conn.execute(
            sa.select(v.c.id, v.c.portfolio_id, v.c.is_compliant, v.c.created_at).where(
                *_window(v.c.created_at, since, until)
            )
        ).all()
        found = conn.execute(
            sa.select(
                p.c.validation_id,
                p.c.portfolio_id,
                p.c.policy_name,
                p.c.severity,
                p.c.enforcement_level,
                p.c.created_at,
            ).where(*_window(p.c.created_at, since, until))
        ).all()
    runs = pa.table(
        {
            "validation_id": pa.array([r.id for r in checked], pa.int64()),
            "portfolio_id": pa.array([r.portfolio_id for r in checked], pa.string()),
            "is_compliant": pa.array([r.is_compliant for r in checked], pa.bool_()),
            "day": pa.array([r.created_at.date() for r in checked], pa.date32()),
        }
    )
    rows = pa.table(
        {
            "validation_id": pa.array([r.validation_id for r in found], pa.int64()),
            "portfolio_id": pa.array([r.portfolio_id for r in found], pa.string()),
            "policy_name": pa.array([r.policy_name for r in found], pa.string()),
            "severity": pa.array([r.severity for r in found], pa.string()),
            "enforcement_level": pa.array([r.enforcement_level for r in found], pa.string()),
            "day": pa.array([r.created_at.date() for r in found], pa.date32()),
        }
    )
    return runs, rows


def _query(
    store: Store, sql: str, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    duckdb, _ = _modules()
    runs, rows = _tables(store, since, until)
    con = duckdb.connect()
    try:
        con.register("runs", runs)
        con.register("rows", rows)
        result = con.execute(sql)
        names = [d[0] for d in result.description]
        return [dict(zip(names, values, strict=True)) for values in result.fetchall()]
    finally:
        con.close()


def violations(
    store: Store, by: Grouping, *, since: datetime | None = None, until: datetime | None = None
) -> Sequence[dict[str, Any]]:
    """Violations per policy, portfolio or day: how many, in how many decisions.

    Per portfolio and per day also how many validations ran and how many were blocked
    (not compliant); per policy how many portfolios. Largest count first (days in order).
    """
    key = _GROUPS[by]
    if by == "policy":
        sql = (
            "select policy_name, count(*) as violations, "
            "count(distinct validation_id) as decisions, "
            "count(distinct portfolio_id) as portfolios "
            "from rows group by policy_name order by violations desc, policy_name"
        )
    else:
        order = "day" if by == "day" else "violations desc, portfolio_id"
        sql = (
            f"with v as (select {key}, count(*) as validations, "
            f"count(*) filter (where not is_compliant) as blocked from runs group by {key}), "
            f"w as (select {key}, count(*) as violations, "
            f"count(distinct validation_id) as decisions from rows group by {key}) "
            f"select v.{key}, v.validations, v.blocked, coalesce(w.violations, 0) as violations, "
            f"coalesce(w.decisions, 0) as decisions from v left join w using ({key}) "
            f"order by {order}"
        )
    out = _query(store, sql, since, until)
    if by == "day":
        for row in out:
            row["day"] = row["day"].isoformat()
    return out


def blocking(
    store: Store, *, limit: int = 10, since: datetime | None = None, until: datetime | None = None
) -> Sequence[dict[str, Any]]:
    """The rules that blocked the most decisions: strict violations of non-compliant ones."""
    sql = (
        "select r.policy_name, count(distinct r.validation_id) as blocked_decisions, "
        "count(distinct r.portfolio_id) as portfolios "
        "from rows r join runs v using (validation_id) "
        "where not v.is_compliant and r.enforcement_level = 'strict' "
        f"group by r.policy_name order by blocked_decisions desc, r.policy_name limit {int(limit)}"
    )
    return _query(store, sql, since, until)

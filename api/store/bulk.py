"""Writes of many rows at once, for the monitor's rounds (thousands of rows a second).

`write_rows` sends one driver `executemany` of values already in the driver's form
(`bind`), skipping SQLAlchemy's per-row parameter processing, which cost about as much as
the rest of a round's database work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["bind", "orjson_text", "write_rows"]


def bind(conn: Connection, column: sa.Column[Any]) -> Callable[[Any], Any]:
    """The driver's form of a value of `column` (what SQLAlchemy would send)."""
    processor = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor if processor is not None else (lambda value: value)


def orjson_text(value: Any) -> str:
    """JSON text of `value`, SQLite's form of a JSON column (orjson: ~20x the stdlib here)."""
    return orjson.dumps(value).decode()


def write_rows(
    conn: Connection, table: sa.Table, rows: list[tuple[Any, ...]], *, key: str | None = None
) -> None:
    """Insert (or, with `key`, upsert) rows of every column, in one driver executemany.

    `rows` hold the driver's values in the table's column order (see `bind`). A round
    writes up to thousands of rows: this skips SQLAlchemy's per-row parameter processing,
    which cost about as much as the rest of the round's database work.
    """
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    names = [c.name for c in table.c]
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
        f"VALUES ({', '.join([mark] * len(names))})"
    )
    if key is not None:  # the same ON CONFLICT clause on SQLite and PostgreSQL
        sets = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n != key)
        sql += f" ON CONFLICT ({quote(key)}) DO UPDATE SET {sets}"
    conn.exec_driver_sql(sql, rows)

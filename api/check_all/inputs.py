"""The positions of a firm-wide check, read from a Parquet or CSV file (and its cash).

The positions file has one row per holding: `portfolio_id`, `symbol`, `quantity` (signed,
in shares), and optionally `price` (the symbol's current price, one price per symbol
across the file). Cash comes from a second file (`portfolio_id`, `cash`) or from rows of
the positions file whose symbol is the cash symbol (default `$CASH`; their quantity is the
amount in the base currency). Rows are numbered from 1, the header not counted; every
problem is one line naming the file, the row and the column.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CASH_SYMBOL", "Holdings", "InputFileError", "read_holdings", "read_table"]

CASH_SYMBOL = "$CASH"
"""The symbol of cash rows in a positions file (the amount is the row's quantity)."""


class InputFileError(Exception):
    """A positions or cash file cannot be read or holds a bad value (one line)."""


@dataclass
class Holdings:
    """Every portfolio's positions and cash, in the base currency.

    `positions[p]` maps symbol to the signed quantity (zero quantities dropped);
    `cash[p]` is the portfolio's cash (absent when neither file gave one); `prices` the
    positions file's `price` column, by symbol; `rows[p]` the first row naming `p`.
    """

    portfolios: list[str]
    positions: dict[str, dict[str, float]]
    cash: dict[str, float]
    prices: dict[str, float] = field(default_factory=dict)
    rows: dict[str, tuple[str, int]] = field(default_factory=dict)
    cash_rows: dict[str, tuple[str, int]] = field(default_factory=dict)


def read_table(path: Path) -> dict[str, list[Any]]:
    """The columns of a .parquet or .csv file as Python lists (None for an empty cell)."""
    try:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - part of the cluster extra
        raise InputFileError(
            "pyarrow is not installed: pip install 'policy-enforcement-service[cluster]'"
        ) from exc
    import pyarrow as pa

    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
        elif suffix == ".csv":
            # Only an empty cell is missing: "nan" or "NA" is a value, and refused as one.
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(null_values=[""]))
        else:
            raise InputFileError(f"{path}: not a .parquet or .csv file")
    except (OSError, pa.ArrowException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise InputFileError(f"{path}: cannot read: {reason}") from exc
    return {name: _values(table.column(name)) for name in table.column_names}


def _values(column: Any) -> list[Any]:
    """A column as a list: through NumPy where no null can hide (several times faster)."""
    import pyarrow as pa

    if column.null_count == 0 and (
        pa.types.is_string(column.type) or pa.types.is_floating(column.type)
    ):
        values: list[Any] = column.to_numpy(zero_copy_only=False).tolist()
        return values
    result: list[Any] = column.to_pylist()
    return result


def _require(path: Path, columns: dict[str, list[Any]], names: Collection[str]) -> None:
    missing = [name for name in names if name not in columns]
    if missing:
        have = ", ".join(columns) or "none"
        raise InputFileError(
            f"{path}: missing column {missing[0]!r} (columns: {have}); expected {', '.join(names)}"
        )


def _text(path: Path, row: int, column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise InputFileError(f"{path}: row {row}, column {column}: empty")
    text = str(value).strip()
    if not text:
        raise InputFileError(f"{path}: row {row}, column {column}: empty")
    return text


def _number(path: Path, row: int, column: str, value: Any, *, positive: bool = False) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputFileError(f"{path}: row {row}, column {column}: empty")
    if isinstance(value, bool):
        raise InputFileError(f"{path}: row {row}, column {column}: {value!r} is not a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputFileError(
            f"{path}: row {row}, column {column}: {value!r} is not a number"
        ) from None
    if not math.isfinite(x):
        raise InputFileError(f"{path}: row {row}, column {column}: {x} is not a finite number")
    if positive and x <= 0:
        raise InputFileError(f"{path}: row {row}, column {column}: {x:g} must be > 0")
    return x


def read_holdings(
    positions_path: Path,
    *,
    cash_path: Path | None = None,
    known_symbols: Collection[str] | None = None,
    cash_symbol: str = CASH_SYMBOL,
    require_cash: bool = True,
) -> Holdings:
    """Read the positions file (and the cash file) into `Holdings`.

    `known_symbols` are the symbols with an instrument (None: every symbol must have a
    `price` in the file). Raises `InputFileError` naming file, row and column for a missing
    column, an empty cell, a quantity or price that is not a finite number, a symbol with
    no instrument and no price, a symbol priced twice differently, a position or a cash
    amount given twice, and (with `require_cash`) a portfolio without cash.
    """
    columns = read_table(positions_path)
    _require(positions_path, columns, ("portfolio_id", "symbol", "quantity"))
    has_price = "price" in columns
    if known_symbols is None and not has_price:
        raise InputFileError(
            f"{positions_path}: missing column 'price' (without --universe or --universe-file "
            "every symbol needs its price in the positions file)"
        )
    known = set(known_symbols or ())
    holdings = _clean(columns, known, cash_symbol, positions_path) if not has_price else None
    if holdings is None:
        holdings = _careful(columns, known, cash_symbol, positions_path)
    if cash_path is not None:
        _read_cash(cash_path, holdings)
    holdings.portfolios = sorted(holdings.positions)
    if require_cash:
        for pid in holdings.portfolios:
            if pid not in holdings.cash:
                where, row = holdings.rows[pid]
                source = f"no row in {cash_path}" if cash_path else f"no {cash_symbol} row"
                raise InputFileError(
                    f"{where}: row {row}, column portfolio_id: portfolio {pid!r} has no cash "
                    f"({source}; pass --missing-cash zero to count it as 0)"
                )
    return holdings


def _plain_texts(values: list[Any]) -> bool:
    """True when every value is a non-empty string without surrounding blanks."""
    return all(type(x) is str and x and x.strip() == x for x in set(values))


def _clean(
    columns: dict[str, list[Any]], known: set[str], cash_symbol: str, path: Path
) -> Holdings | None:
    """The holdings of a file that passes every check in bulk; None: read it row by row.

    A file of a million rows is read in about a second this way; any problem sends it to
    `_careful`, which finds the first bad row and names it.
    """
    ids, symbols = columns["portfolio_id"], columns["symbol"]
    if not (_plain_texts(ids) and _plain_texts(symbols)):
        return None
    try:
        quantities = np.asarray(columns["quantity"], dtype=float)
    except (TypeError, ValueError):
        return None
    if quantities.ndim != 1 or not np.isfinite(quantities).all():
        return None
    if not set(symbols) <= known | {cash_symbol}:
        return None
    if len(set(zip(ids, symbols, strict=True))) != len(ids):
        return None  # a position (or a cash row) given twice
    holdings = Holdings(portfolios=[], positions={}, cash={})
    positions, cash, rows = holdings.positions, holdings.cash, holdings.rows
    for k, (pid, symbol, quantity) in enumerate(
        zip(ids, symbols, quantities.tolist(), strict=True)
    ):
        book = positions.get(pid)
        if book is None:
            book = positions[pid] = {}
            rows[pid] = (str(path), k + 1)
        if symbol == cash_symbol:
            cash[pid] = quantity
            holdings.cash_rows[pid] = (str(path), k + 1)
        elif quantity != 0.0:
            book[symbol] = quantity
    return holdings


def _careful(
    columns: dict[str, list[Any]], known: set[str], cash_symbol: str, positions_path: Path
) -> Holdings:
    """The holdings read row by row, every value checked: the first problem is raised."""
    holdings = Holdings(portfolios=[], positions={}, cash={})
    has_price = "price" in columns
    price_row: dict[str, int] = {}
    cash_row = holdings.cash_rows
    seen: dict[tuple[str, str], int] = {}
    ids, symbols, quantities = columns["portfolio_id"], columns["symbol"], columns["quantity"]
    prices = columns.get("price")
    for k in range(len(ids)):
        row = k + 1
        pid = _text(positions_path, row, "portfolio_id", ids[k])
        symbol = _text(positions_path, row, "symbol", symbols[k])
        quantity = _number(positions_path, row, "quantity", quantities[k])
        holdings.rows.setdefault(pid, (str(positions_path), row))
        book = holdings.positions.setdefault(pid, {})
        if symbol == cash_symbol:
            if pid in cash_row:
                raise InputFileError(
                    f"{positions_path}: row {row}, column symbol: cash of {pid!r} is also "
                    f"given in row {cash_row[pid][1]}"
                )
            cash_row[pid] = (str(positions_path), row)
            holdings.cash[pid] = quantity
            continue
        if (pid, symbol) in seen:
            raise InputFileError(
                f"{positions_path}: row {row}, column symbol: {symbol} in {pid!r} is also in "
                f"row {seen[pid, symbol]} (one row per position)"
            )
        seen[pid, symbol] = row
        if prices is not None and prices[k] is not None and str(prices[k]).strip():
            price = _number(positions_path, row, "price", prices[k], positive=True)
            if symbol in holdings.prices and holdings.prices[symbol] != price:
                raise InputFileError(
                    f"{positions_path}: row {row}, column price: {symbol} at {price:g}, but at "
                    f"{holdings.prices[symbol]:g} in row {price_row[symbol]} (one price per "
                    "symbol)"
                )
            holdings.prices.setdefault(symbol, price)
            price_row.setdefault(symbol, row)
        elif symbol not in known:
            column = "price" if has_price else "symbol"
            raise InputFileError(
                f"{positions_path}: row {row}, column {column}: unknown symbol {symbol} (no "
                "instrument in the universe and no price)"
            )
        if quantity != 0.0:
            book[symbol] = quantity
    return holdings


def _read_cash(path: Path, holdings: Holdings) -> None:
    cash_row = holdings.cash_rows
    columns = read_table(path)
    _require(path, columns, ("portfolio_id", "cash"))
    for k, (raw_id, raw_cash) in enumerate(
        zip(columns["portfolio_id"], columns["cash"], strict=True)
    ):
        row = k + 1
        pid = _text(path, row, "portfolio_id", raw_id)
        amount = _number(path, row, "cash", raw_cash)
        if pid in cash_row:
            where, first = cash_row[pid]
            raise InputFileError(
                f"{path}: row {row}, column cash: cash of {pid!r} is also given in {where} "
                f"row {first}"
            )
        cash_row[pid] = (str(path), row)
        holdings.cash[pid] = amount
        holdings.positions.setdefault(pid, {})
        holdings.rows.setdefault(pid, (str(path), row))

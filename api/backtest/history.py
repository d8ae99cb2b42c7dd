"""A back-test's history: portfolio states and decisions by day, read from Parquet and checked.

A history is a directory (docs/backtest.md):

- `states.parquet`: `date`, `portfolio_id`, `symbol`, `quantity`, `price`; one row per
  portfolio, day and symbol (the holdings at the start of that day, at that day's price; a
  row with quantity 0 prices a name the portfolio does not hold). Cash is a row with the
  symbol `$CASH`: its quantity is the amount (base currency), its price 1.
- `decisions.parquet`: `date`, `portfolio_id`, `decision_id`, `symbol`, `quantity` (signed:
  positive buys, negative sells); the rows of one decision id are its trades.
- `instruments.parquet` (optional, or a universe file instead): `symbol` and the reference
  data of each name (`sector`, `issuer`, `country`, `asset_class`, `adv`, `lot_size`; any
  other column becomes an attribute).

Everything wrong is a `HistoryError` naming the file, the row (numbered from 1) and the column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models import Instrument

__all__ = [
    "CASH",
    "Day",
    "Decision",
    "History",
    "HistoryError",
    "PortfolioHistory",
    "instruments_from_universe",
    "load_history",
]

CASH = "$CASH"
"""The symbol of a state's cash row."""

MAX_ID = 200
"""The longest portfolio, decision or symbol id (the wire's bound)."""

_INSTRUMENT_FIELDS = ("sector", "issuer", "country", "asset_class", "currency", "adv", "lot_size")


class HistoryError(Exception):
    """The history cannot be read or is inconsistent; the message names file, row and column."""


@dataclass(frozen=True)
class Decision:
    """One decision of a day: its id and its trades (symbol, signed quantity) in file order."""

    decision_id: str
    trades: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Day:
    """A portfolio's state on one day and the decisions taken that day, in file order."""

    date: date
    cash: float
    positions: Mapping[str, float]
    prices: Mapping[str, float]
    decisions: tuple[Decision, ...] = ()


@dataclass(frozen=True)
class PortfolioHistory:
    """The days of one portfolio, in date order."""

    portfolio_id: str
    days: tuple[Day, ...]


@dataclass(frozen=True)
class History:
    """Every portfolio's days and the instruments' reference data (without prices)."""

    portfolios: tuple[PortfolioHistory, ...]
    instruments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def dates(self) -> list[date]:
        """Every date of any portfolio, sorted."""
        return sorted({d.date for p in self.portfolios for d in p.days})


def _table(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - part of the cluster extra
        raise HistoryError("reading Parquet needs pyarrow (the cluster extra)") from exc
    if not path.is_file():
        raise HistoryError(f"{path}: no such file")
    try:
        return pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise HistoryError(f"{path}: not a readable Parquet file ({exc})") from exc


def _column(table: Any, path: Path, name: str, kind: str, *, nulls: bool = False) -> list[Any]:
    """The column's values, checked to be `kind` (text, number, date) and not null."""
    import pyarrow as pa

    if name not in table.column_names:
        raise HistoryError(f"{path}: no column {name!r} (columns: {', '.join(table.column_names)})")
    column = table.column(name)
    t = column.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    ok = {
        "text": pa.types.is_string(t) or pa.types.is_large_string(t),
        "number": pa.types.is_integer(t) or pa.types.is_floating(t),
        "date": pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t),
    }[kind]
    if not ok:
        raise HistoryError(f"{path}: column {name!r}: expected {kind}, got {column.type}")
    values = column.to_pylist()
    if not nulls:
        for k, v in enumerate(values):
            if v is None:
                raise HistoryError(f"{path}: row {k + 1}, column {name!r}: missing")
    if kind == "date":
        values = [_date(v, path, k, name) for k, v in enumerate(values)]
    if kind == "number":
        for k, v in enumerate(values):
            if v is not None and not math.isfinite(v):
                raise HistoryError(f"{path}: row {k + 1}, column {name!r}: not a finite number")
        values = [None if v is None else float(v) for v in values]
    if kind == "text":
        for k, v in enumerate(values):
            if v is not None and not v.strip():
                raise HistoryError(f"{path}: row {k + 1}, column {name!r}: empty")
            if v is not None and len(v) > MAX_ID:
                raise HistoryError(
                    f"{path}: row {k + 1}, column {name!r}: longer than {MAX_ID} characters"
                )
    return list(values)


def _date(value: Any, path: Path, k: int, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise HistoryError(
            f"{path}: row {k + 1}, column {name!r}: {value!r} is not a date (YYYY-MM-DD)"
        ) from None


def _states(path: Path) -> dict[str, dict[date, dict[str, Any]]]:
    table = _table(path)
    dates = _column(table, path, "date", "date")
    portfolios = _column(table, path, "portfolio_id", "text")
    symbols = _column(table, path, "symbol", "text")
    quantities = _column(table, path, "quantity", "number")
    prices = _column(table, path, "price", "number", nulls=True)
    out: dict[str, dict[date, dict[str, Any]]] = {}
    for k, (d, pid, sym, q, p) in enumerate(
        zip(dates, portfolios, symbols, quantities, prices, strict=True)
    ):
        day = out.setdefault(pid, {}).setdefault(d, {"cash": None, "pos": {}, "px": {}})
        where = f"{path}: row {k + 1}"
        if sym == CASH:
            if p is not None and p != 1.0:
                raise HistoryError(f"{where}, column 'price': the {CASH} row's price must be 1")
            if day["cash"] is not None:
                raise HistoryError(f"{where}: a second {CASH} row for {pid} on {d}")
            day["cash"] = q
            continue
        if sym in day["px"]:
            raise HistoryError(f"{where}, column 'symbol': {sym} appears twice for {pid} on {d}")
        if p is None or p <= 0:
            raise HistoryError(f"{where}, column 'price': must be a number above 0")
        day["pos"][sym] = q
        day["px"][sym] = p
    for pid, days in out.items():
        for d, day in days.items():
            cash = day["cash"] or 0.0
            nav = cash + sum(q * day["px"][s] for s, q in day["pos"].items())
            if nav <= 0:
                raise HistoryError(f"{path}: portfolio {pid} on {d}: NAV {nav:.2f} is not above 0")
            day["cash"] = cash
    return out


def _decisions(
    path: Path, states: Mapping[str, Mapping[date, Mapping[str, Any]]]
) -> dict[tuple[str, date], list[Decision]]:
    table = _table(path)
    dates = _column(table, path, "date", "date")
    portfolios = _column(table, path, "portfolio_id", "text")
    ids = _column(table, path, "decision_id", "text")
    symbols = _column(table, path, "symbol", "text")
    quantities = _column(table, path, "quantity", "number")
    trades: dict[str, list[tuple[str, float]]] = {}
    home: dict[str, tuple[str, date]] = {}
    for k, (d, pid, did, sym, q) in enumerate(
        zip(dates, portfolios, ids, symbols, quantities, strict=True)
    ):
        where = f"{path}: row {k + 1}"
        if did in home and home[did] != (pid, d):
            other = home[did]
            raise HistoryError(
                f"{where}, column 'decision_id': {did} is also a decision of {other[0]} "
                f"on {other[1]}"
            )
        day = states.get(pid, {}).get(d)
        if day is None:
            raise HistoryError(f"{where}: no state of portfolio {pid} on {d} in states.parquet")
        if q == 0:
            raise HistoryError(f"{where}, column 'quantity': a trade of 0")
        if sym == CASH or sym not in day["px"]:
            raise HistoryError(
                f"{where}, column 'symbol': {sym} has no price in the state of {pid} on {d} "
                "(add a row with quantity 0)"
            )
        home[did] = (pid, d)
        trades.setdefault(did, []).append((sym, q))
    out: dict[tuple[str, date], list[Decision]] = {}
    for did, (pid, d) in home.items():
        out.setdefault((pid, d), []).append(Decision(did, tuple(trades[did])))
    return out


def _instruments(path: Path) -> dict[str, dict[str, Any]]:
    table = _table(path)
    symbols = _column(table, path, "symbol", "text")
    out: dict[str, dict[str, Any]] = {}
    columns = {n: table.column(n).to_pylist() for n in table.column_names if n != "symbol"}
    for k, sym in enumerate(symbols):
        if sym in out:
            raise HistoryError(f"{path}: row {k + 1}, column 'symbol': {sym} appears twice")
        static: dict[str, Any] = {"attributes": {}}
        for name, values in columns.items():
            value = values[k]
            if value is None or name == "price":
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise HistoryError(f"{path}: row {k + 1}, column {name!r}: not a finite number")
            if name in _INSTRUMENT_FIELDS:
                static[name] = value
            elif isinstance(value, str | int | float | bool):
                static["attributes"][name] = value
        try:
            Instrument.model_validate({"symbol": sym, "price": 1.0, **static})
        except ValidationError as exc:
            error = exc.errors()[0]
            column = next((str(x) for x in reversed(error["loc"]) if str(x) in columns), "symbol")
            raise HistoryError(f"{path}: row {k + 1}, column {column!r}: {error['msg']}") from None
        out[sym] = static
    return out


def instruments_from_universe(path: Path) -> dict[str, dict[str, Any]]:
    """The instruments of a universe file (as `pes universes apply` reads), without prices."""
    from api.files.reference_files import ReferenceFileError, load_reference_data
    from models import Universe

    try:
        universes = load_reference_data(path, Universe)
    except ReferenceFileError as exc:
        raise HistoryError(str(exc)) from exc
    out: dict[str, dict[str, Any]] = {}
    for universe in universes:
        for instrument in universe.instruments:
            data = instrument.model_dump(mode="json", exclude={"price", "symbol"})
            out[instrument.symbol] = {k: v for k, v in data.items() if v is not None}
    return out


def load_history(
    directory: Path, *, instruments: Mapping[str, Mapping[str, Any]] | None = None
) -> History:
    """The history in `directory`; `instruments` replaces its `instruments.parquet`.

    Raises
    ------
    HistoryError
        A file is missing or unreadable, a column missing or of the wrong type, a value
        missing or out of range, a decision without its state or price, a symbol without
        reference data; the message names file, row and column.
    """
    if not directory.is_dir():
        raise HistoryError(
            f"{directory}: not a directory (expected states.parquet, decisions.parquet)"
        )
    states_path = directory / "states.parquet"
    states = _states(states_path)
    decisions = _decisions(directory / "decisions.parquet", states)
    if instruments is None:
        listed = directory / "instruments.parquet"
        if not listed.exists():
            raise HistoryError(
                f"{listed}: no such file (give the instruments' reference data with --universe)"
            )
        instruments = _instruments(listed)
    held = sorted({s for days in states.values() for day in days.values() for s in day["px"]})
    missing = [s for s in held if s not in instruments]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise HistoryError(f"{states_path}: column 'symbol': no reference data for {shown}")
    portfolios = []
    for pid in sorted(states):
        days = tuple(
            Day(
                date=d,
                cash=day["cash"],
                positions=day["pos"],
                prices=day["px"],
                decisions=tuple(decisions.get((pid, d), ())),
            )
            for d, day in sorted(states[pid].items())
        )
        portfolios.append(PortfolioHistory(pid, days))
    if not portfolios:
        raise HistoryError(f"{states_path}: no rows")
    return History(tuple(portfolios), {s: dict(v) for s, v in instruments.items()})

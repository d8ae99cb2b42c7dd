"""Derive `sp500.csv` from the public S&P 500 data packages.

Usage: ``python benchmarks/data/derive.py SOURCE_DIR`` where SOURCE_DIR holds the two files
of the `datasets/s-and-p-500-companies` and `datasets/s-and-p-500-companies-financials`
packages: ``constituents.csv`` and ``constituents-financials.csv``. Writes ``sp500.csv``
beside this script: one row per constituent present in both files with a price and a market
cap, ordered by market cap (largest first).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

COLUMNS = ["symbol", "sector", "sub_industry", "cik", "price", "market_cap"]


def derive(source: Path, target: Path) -> int:
    """Write the compact file; returns the number of rows."""
    with (source / "constituents.csv").open(encoding="utf-8", newline="") as f:
        names = {row["Symbol"]: row for row in csv.DictReader(f)}
    with (source / "constituents-financials.csv").open(encoding="utf-8", newline="") as f:
        financials = {row["Symbol"]: row for row in csv.DictReader(f)}
    rows = []
    for symbol, row in names.items():
        fin = financials.get(symbol)
        if fin is None or not fin["Price"] or not fin["Market Cap"]:
            continue
        rows.append(
            {
                "symbol": symbol,
                "sector": row["GICS Sector"],
                "sub_industry": row["GICS Sub-Industry"],
                "cik": row["CIK"],
                "price": f"{float(fin['Price']):.2f}",
                "market_cap": f"{float(fin['Market Cap']):.0f}",
            }
        )
    rows.sort(key=lambda r: (-float(r["market_cap"]), r["symbol"]))
    with target.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    count = derive(Path(sys.argv[1]), Path(__file__).with_name("sp500.csv"))
    print(f"wrote {count} rows", file=sys.stderr)

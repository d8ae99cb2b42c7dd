"""The benchmark universe: real S&P 500 constituents, extended with marked synthetic names.

`benchmarks/data/sp500.csv` holds the real names (largest market cap first). A universe of
`n` names takes the `n` largest; beyond the real ones it adds synthetic clones, generated
deterministically: a clone copies a real name's sector and sub-industry, gets a perturbed
price, a smaller market cap and an issuer of its own, and its symbol is the source symbol
with the suffix `.SYN<k>` so that it can never be taken for a real listing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["DATA_FILE", "SYNTHETIC_MARK", "Name", "real_names", "universe"]

DATA_FILE = Path(__file__).with_name("data") / "sp500.csv"
SYNTHETIC_MARK = ".SYN"
_SEED = 20261123


@dataclass(frozen=True)
class Name:
    """One instrument of the universe, with the synthetic reference data it needs."""

    symbol: str
    sector: str
    sub_industry: str
    issuer: str
    price: float
    market_cap: float
    beta: float
    esg: float
    adv: float
    synthetic: bool


@cache
def real_names() -> tuple[Name, ...]:
    """The real constituents of the data file, largest market cap first."""
    with DATA_FILE.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(_SEED)
    out = []
    for row in rows:
        price, cap = float(row["price"]), float(row["market_cap"])
        out.append(_name(rng, row["symbol"], row, row["cik"], price, cap, synthetic=False))
    return tuple(out)


def _name(
    rng: np.random.Generator,
    symbol: str,
    row: dict[str, str],
    issuer: str,
    price: float,
    cap: float,
    *,
    synthetic: bool,
) -> Name:
    """A name with beta, ESG score and ADV drawn from `rng` (not in the source data)."""
    beta = float(rng.uniform(0.6, 1.6))
    esg = float(rng.uniform(2.0, 9.0))
    adv = float(np.round(cap / price * rng.uniform(0.002, 0.01)))  # 0.2%-1% of shares a day
    return Name(
        symbol=symbol,
        sector=row["sector"],
        sub_industry=row["sub_industry"],
        issuer=issuer,
        price=price,
        market_cap=cap,
        beta=beta,
        esg=esg,
        adv=max(adv, 1000.0),
        synthetic=synthetic,
    )


@cache
def _extended(size: int) -> tuple[Name, ...]:
    real = real_names()
    if size <= len(real):
        return real[:size]
    rng = np.random.default_rng(_SEED + 1)
    out = list(real)
    k = 0
    while len(out) < size:
        source = real[k % len(real)]
        copy = k // len(real) + 1
        price = round(source.price * float(np.exp(rng.normal(0.0, 0.3))), 2)
        cap = source.market_cap * float(rng.uniform(0.02, 0.2))
        row = {"sector": source.sector, "sub_industry": source.sub_industry}
        symbol = f"{source.symbol}{SYNTHETIC_MARK}{copy}"
        issuer = f"SYN{copy}-{source.issuer}"
        out.append(_name(rng, symbol, row, issuer, max(price, 1.0), cap, synthetic=True))
        k += 1
    return tuple(out)


def universe(n: int) -> tuple[Name, ...]:
    """The `n` names of a benchmark case: real ones first, then synthetic clones.

    Deterministic: the same `n` always gives the same names, and a larger universe extends
    a smaller one (clones are drawn in sequence from one seeded generator).
    """
    if n < 1:
        raise ValueError("a universe needs at least one name")
    return _extended(n)

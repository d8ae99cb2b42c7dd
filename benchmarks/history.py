"""The shipped back-test history, built deterministically from the S&P 500 data.

`python -m benchmarks.history [--out DIR]` writes `states.parquet`, `decisions.parquet` and
`instruments.parquet` (default: examples/backtest/history/, what the README's `pes backtest`
reads). Five portfolios of 50 real names each (`benchmarks/data/sp500.csv`), 60 trading
days: prices follow a seeded simulation (a market, a sector and a name-specific lognormal
step a day), and every day each portfolio takes one or two decisions of a momentum strategy
(it keeps buying its largest names, funded by trimming others). The history records the
decisions executed as proposed, so the strategy's drift over limits is visible in the
holdings: what a policy set would have blocked is the back-test's question.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.universe import Name, real_names

OUT = Path(__file__).resolve().parents[1] / "examples" / "backtest" / "history"
SEED = 20261203
PORTFOLIOS = {  # id: (market-cap exponent of the initial weights, share of IT names drawn)
    "core-equity": 1.0,
    "growth": 1.2,
    "diversified": 0.5,
    "large-cap": 0.9,
    "tilted": 0.7,
}
NAMES, DAYS, POOL = 50, 60, 150
START = date(2026, 6, 1)
CASH = "$CASH"


def trading_days(n: int) -> list[date]:
    out: list[date] = []
    d = START
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def prices(pool: tuple[Name, ...], rng: np.random.Generator) -> np.ndarray:
    """Closes of every pool name on every day: market, sector and own lognormal steps."""
    sectors = sorted({n.sector for n in pool})
    sector_of = np.array([sectors.index(n.sector) for n in pool])
    market = rng.normal(0.0003, 0.009, DAYS)
    sector = rng.normal(0.0, 0.006, (DAYS, len(sectors)))
    own = rng.normal(0.0, 0.012, (DAYS, len(pool)))
    steps = market[:, None] + sector[:, sector_of] + own
    steps[0] = 0.0
    start = np.array([n.price for n in pool])
    return np.round(start * np.exp(np.cumsum(steps, axis=0)), 2)


def simulate(
    pid: str, alpha: float, pool: tuple[Name, ...], px: np.ndarray, rng: np.random.Generator
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """One portfolio's states and decisions, the decisions executed as proposed."""
    weights_p = np.sqrt([n.market_cap for n in pool])
    pick = np.sort(rng.choice(len(pool), NAMES, replace=False, p=weights_p / weights_p.sum()))
    cap = np.array([pool[k].market_cap for k in pick]) ** alpha
    target = 0.96 * cap / cap.sum()
    for _ in range(20):  # cap at 7% and spread the excess over the others
        target = np.minimum(target, 0.07)
        target *= 0.96 / target.sum()
    nav0 = float(rng.choice([25e6, 50e6, 100e6]))
    p = px[:, pick]
    shares = np.floor(target * nav0 / p[0])
    cash = nav0 - float(shares @ p[0])
    states: list[dict[str, object]] = []
    decisions: list[dict[str, object]] = []
    for day, d in enumerate(trading_days(DAYS)):
        states.append(
            {
                "date": d,
                "portfolio_id": pid,
                "symbol": CASH,
                "quantity": round(cash, 2),
                "price": 1.0,
            }
        )
        for k, j in enumerate(pick):
            states.append(
                {
                    "date": d,
                    "portfolio_id": pid,
                    "symbol": pool[j].symbol,
                    "quantity": float(shares[k]),
                    "price": float(p[day, k]),
                }
            )
        nav = cash + float(shares @ p[day])
        for slot in range(1 + int(rng.random() < 0.3)):
            largest = np.argsort(-shares * p[day])[:4]
            trades: dict[int, float] = {}
            for _ in range(int(rng.integers(1, 3))):  # buys: mostly the largest names
                k = int(rng.choice(largest)) if rng.random() < 0.35 else int(rng.integers(NAMES))
                trades[k] = trades.get(k, 0.0) + np.floor(
                    rng.uniform(0.002, 0.01) * nav / p[day, k]
                )
            for _ in range(int(rng.integers(1, 3))):  # sells: trim another name
                k = int(rng.integers(NAMES))
                if k not in trades:
                    trades[k] = -np.floor(rng.uniform(0.1, 0.4) * shares[k])
            spend = sum(q * p[day, k] for k, q in trades.items())
            if cash - spend < 0.01 * nav:  # keep 1% in cash
                buys = sum(q * p[day, k] for k, q in trades.items() if q > 0)
                scale = max(0.0, (cash - 0.01 * nav - (spend - buys)) / buys) if buys else 0.0
                trades = {k: (np.floor(q * scale) if q > 0 else q) for k, q in trades.items()}
            did = f"{pid}-{d:%m%d}-{slot}"
            for k, q in sorted(trades.items()):
                if q:
                    decisions.append(
                        {
                            "date": d,
                            "portfolio_id": pid,
                            "decision_id": did,
                            "symbol": pool[pick[k]].symbol,
                            "quantity": float(q),
                        }
                    )
                    shares[k] += q
                    cash -= q * float(p[day, k])
    return states, decisions


def build(out: Path) -> None:
    pool = real_names()[:POOL]
    rng = np.random.default_rng(SEED)
    px = prices(pool, rng)
    states: list[dict[str, object]] = []
    decisions: list[dict[str, object]] = []
    for pid, alpha in PORTFOLIOS.items():
        s, d = simulate(pid, alpha, pool, px, rng)
        states += s
        decisions += d
    out.mkdir(parents=True, exist_ok=True)
    options = {"compression": "zstd", "use_dictionary": True}
    pq.write_table(pa.Table.from_pylist(states), out / "states.parquet", **options)
    pq.write_table(pa.Table.from_pylist(decisions), out / "decisions.parquet", **options)
    instruments = [
        {
            "symbol": n.symbol,
            "sector": n.sector,
            "issuer": n.issuer,
            "sub_industry": n.sub_industry,
            "market_cap": n.market_cap,
        }
        for n in pool
    ]
    pq.write_table(pa.Table.from_pylist(instruments), out / "instruments.parquet", **options)
    sizes = {f.name: f.stat().st_size for f in sorted(out.glob("*.parquet"))}
    n = len({r["decision_id"] for r in decisions})
    print(f"{len(states)} state rows, {len(decisions)} trades in {n} decisions -> {out} {sizes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory (default {OUT})")
    build(parser.parse_args().out)


if __name__ == "__main__":
    main()

"""Monitor load test: `python -m benchmarks.monitor [--portfolios P] [--rate R] [--seconds S]`.

Starts `pes monitor` as a process on a fresh database (SQLite by default) against the NATS
server at `--nats` (loopback), registers a universe of `--symbols` names in 5 sectors and
three policies (a 10% name cap, a 40% sector cap, a 1% cash floor), then publishes
position snapshots and price ticks at `--rate` updates per second for `--seconds`:

- a snapshot of a random portfolio holds 20 names at ~4.6% each; with probability
  `--breach` one name is at 12% (over the cap), so a portfolio moves in and out of breach
  and the monitor opens and cures violations (a `policy_breach_detected` or
  `policy_breach_cleared` event each);
- one update in 100 is a price tick moving 5 names by up to ±1% (re-checking every
  portfolio that holds them).

Counted: updates published (and stored by the stream), processed (rows of
`monitor_updates`), lost (published - processed, must be 0), duplicates; the
update-to-event latency (from publishing an update to receiving the event it caused, on
the service's event subject) p50 / p99 / max; the monitor's throughput and how long it
took to catch up after the last publish. Prints the table of every run kept in
`benchmarks/results/monitor.json` (a run replaces the one of the same size) and, with
`--write-docs`, puts it into docs/monitor.md. No test asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from api.store import Store, read_monitor_status
from api.store.tables import monitor_updates
from benchmarks.monitor_table import runs_in, same_case, table, write_docs
from benchmarks.report import machine_info
from models import PolicyDefinition, Universe

RESULTS = Path(__file__).with_name("results") / "monitor.json"
REPO = Path(__file__).resolve().parents[1]
HELD = 20
SECTORS = ("Tech", "Energy", "Health", "Financials", "Industrials")
POLICIES = [
    {
        "policy_name": "name-cap",
        "policy_type": "POSITION_LIMIT",
        "description": "No name above 10% of NAV",
        "rules": {"constraints": [{"kind": "weight_bounds", "max": 0.10}]},
    },
    {
        "policy_name": "sector-cap",
        "policy_type": "SECTOR_LIMIT",
        "description": "No sector above 40% of NAV",
        "rules": {"constraints": [{"kind": "group_limit", "attribute": "sector", "max": 0.40}]},
    },
    {
        "policy_name": "cash-floor",
        "policy_type": "INVESTMENT_MANDATE",
        "description": "At least 1% cash",
        "rules": {"constraints": [{"kind": "cash", "min": 0.01}]},
    },
]


def _symbols(n: int) -> list[str]:
    return [f"S{i:03d}" for i in range(n)]


def _setup(url: str, n: int) -> None:
    store = Store.open(url)
    universe = Universe.model_validate(
        {
            "id": "bench-universe",
            "instruments": [
                {"symbol": s, "price": 100.0, "sector": SECTORS[i % len(SECTORS)]}
                for i, s in enumerate(_symbols(n))
            ],
        }
    )
    store.universes.put(universe, actor="benchmark")
    for p in POLICIES:
        store.policies.create(PolicyDefinition.model_validate(p), actor="benchmark")
    store.engine.dispose()


class Load:
    """The portfolios' holdings and the updates drawn for them (seeded)."""

    def __init__(self, portfolios: int, n: int, breach: float, seed: int = 42) -> None:
        self.rng = random.Random(seed)
        self.symbols = _symbols(n)
        self.prices = dict.fromkeys(self.symbols, 100.0)
        self.breach = breach
        # Each portfolio holds 20 names, 4 from each sector (no sector above 40%).
        by_sector = [self.symbols[k :: len(SECTORS)] for k in range(len(SECTORS))]
        self.held = [
            [s for names in by_sector for s in self.rng.sample(names, HELD // len(SECTORS))]
            for _ in range(portfolios)
        ]

    def snapshot(self, uid: str, p: int) -> dict[str, Any]:
        """Portfolio p at ~4.6% a name (cash 8%), one name at 12% with probability `breach`."""
        nav = 1_000_000.0
        weights = dict.fromkeys(self.held[p], 0.046)
        if self.rng.random() < self.breach:
            weights[self.rng.choice(self.held[p])] = 0.12
        positions = {s: round(w * nav / self.prices[s], 4) for s, w in weights.items()}
        cash = nav - sum(q * self.prices[s] for s, q in positions.items())
        return {"update_id": uid, "portfolio_id": f"p{p:05d}", "cash": cash, "positions": positions}

    def tick(self, uid: str) -> dict[str, Any]:
        """Five names moved by up to ±1% (kept within 10% of their first price)."""
        moved = {}
        for s in self.rng.sample(self.symbols, 5):
            price = min(110.0, max(90.0, self.prices[s] * (1 + self.rng.uniform(-0.01, 0.01))))
            self.prices[s] = moved[s] = round(price, 4)
        return {"update_id": uid, "prices": moved}


async def _load_test(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    import nats

    nc = await nats.connect(args.nats, connect_timeout=5)
    js = nc.jetstream()
    prefix = names["prefix"]
    await js.add_stream(name=names["stream"], subjects=[f"{prefix}.>"])
    await js.add_stream(name=names["events_stream"], subjects=[names["events_subject"]])
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    # The event's `timestamp` is its round's commit (wall clock, this machine): it splits an
    # update's latency into the monitor's part (publish to commit) and the relay's.
    splits: list[tuple[float, float]] = []
    clock_offset = time.time() - time.perf_counter()
    kinds: dict[str, int] = {}

    async def on_event(msg: Any) -> None:
        now = time.perf_counter()
        body = json.loads(msg.data)
        kinds[body["event_type"]] = kinds.get(body["event_type"], 0) + 1
        start = sent_at.get(body.get("update_id", ""))
        if start is not None:
            latencies.append(now - start)
            committed = datetime.fromisoformat(body["timestamp"]).timestamp() - clock_offset
            splits.append((committed - start, now - committed))

    await nc.subscribe(names["events_subject"], cb=on_event)
    load = Load(args.portfolios, args.symbols, args.breach)
    proc = _start_monitor(args, names)
    try:
        total = int(args.rate * args.seconds)
        # Every update is drawn and encoded before the clock starts (while the monitor
        # starts): the publisher then only sends, so the rate asked is the rate sent.
        messages = _messages(load, total, names)
        await _wait_running(args.database, names["consumer"], proc, args.start_timeout)
        slice_s = 0.005
        begin = time.perf_counter()
        published = 0
        progress = _Progress(total)
        while published < total:
            due = min(total, int((time.perf_counter() - begin) * args.rate) + 1)
            now = time.perf_counter()
            for uid, subject, body in messages[published:due]:
                sent_at[uid] = now
                await nc.publish(subject, body)
            published = due
            progress.show(published)
            await nc.flush()
            await asyncio.sleep(max(0.0, min(slice_s, begin + published / args.rate - now)))
        publish_s = time.perf_counter() - begin
        progress.done()
        info = await js.stream_info(names["stream"])
        processed, caught_up = await _wait_processed(args.database, total, args.drain_timeout)
        done_s = time.perf_counter() - begin
        await asyncio.sleep(2.0)  # the last events on their way from the outbox
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (names["stream"], names["events_stream"]):
            try:
                await js.delete_stream(stream)
            except Exception:
                pass
        await nc.close()
    engine = sa.create_engine(args.database)
    [status] = read_monitor_status(engine, names["consumer"])
    engine.dispose()
    lat = np.array(latencies) * 1000.0
    split = np.array(splits).reshape(-1, 2) * 1000.0
    return {
        "published": total,
        "stored_by_stream": int(info.state.messages),
        "processed": processed,
        "lost": total - processed,
        "duplicates": status.duplicates,
        "rejected": status.rejected,
        "checks": status.checks,
        "breaches_opened": status.breaches_opened,
        "breaches_cleared": status.breaches_cleared,
        "events_received": kinds,
        "publish_rate_per_s": total / publish_s,
        "processed_rate_per_s": processed / done_s,
        "caught_up_s_after_last_publish": caught_up,
        "latency_ms": {
            "events": len(lat),
            "p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99": float(np.percentile(lat, 99)) if len(lat) else None,
            "max": float(lat.max()) if len(lat) else None,
            **{
                f"{part}_p{q}": float(np.percentile(split[:, k], q)) if len(split) else None
                for k, part in enumerate(("to_commit", "commit_to_event"))
                for q in (50, 99)
            },
        },
        "monitor_exit_code": exit_code,
    }


def _messages(load: Load, total: int, names: dict[str, str]) -> list[tuple[str, str, bytes]]:
    """(update id, subject, body) of every update, in publishing order."""
    prefix, found = names["prefix"], []
    print(f"drawing {total:,} updates", file=sys.stderr)
    for k in range(total):
        uid = f"{names['run']}-{k}"
        if k % 100 == 99:
            subject, body = f"{prefix}.prices", load.tick(uid)
        else:
            p = load.rng.randrange(len(load.held))
            subject, body = f"{prefix}.positions.p{p:05d}", load.snapshot(uid, p)
        found.append((uid, subject, json.dumps(body).encode()))
    return found


class _Progress:
    """A one-line progress display on standard error (updated at most 4 times a second)."""

    def __init__(self, total: int) -> None:
        self.total, self.last = total, 0.0

    def show(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= 0.25:
            self.last = now
            width = 30
            filled = int(width * done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            print(f"\rpublishing [{bar}] {done:,}/{self.total:,}", end="", file=sys.stderr)

    def done(self) -> None:
        print(f"\rpublishing [{'#' * 30}] {self.total:,}/{self.total:,}", file=sys.stderr)


def _start_monitor(args: argparse.Namespace, names: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env |= {"PES_NATS_STREAM": names["events_stream"], "PES_NATS_SUBJECT": names["events_subject"]}
    command = [
        sys.executable, "-m", "api.cli", "-v", "monitor", "--database", args.database,
        "--nats", args.nats, "--universe", "bench-universe", "--batch-max", str(args.batch_max),
        "--batch-ms", str(args.batch_ms), "--stream", names["stream"],
        "--prefix", names["prefix"], "--consumer", names["consumer"],
    ]  # fmt: skip
    log = open(args.log, "ab")
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


async def _wait_running(
    url: str, consumer: str, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    engine = sa.create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"pes monitor exited with {proc.returncode}: see the log")
            try:
                if read_monitor_status(engine, consumer):
                    return
            except sa.exc.OperationalError:
                pass  # the schema is not there yet
            if time.monotonic() > deadline:
                raise SystemExit(f"pes monitor not running within {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        engine.dispose()


async def _wait_processed(url: str, total: int, timeout: float) -> tuple[int, float]:
    """Processed updates once all are (or after `timeout`), and how long that took."""
    engine = sa.create_engine(url)
    start = time.perf_counter()
    count = 0
    try:
        while time.perf_counter() - start < timeout:
            with engine.connect() as conn:
                count = int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(monitor_updates)
                    ).scalar_one()
                )
            if count >= total:
                break
            await asyncio.sleep(0.1)
    finally:
        engine.dispose()
    return count, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, publish, count; the results as written to the JSON file."""
    run_id = uuid.uuid4().hex[:10]
    names = {
        "run": run_id,
        "stream": f"PES_BENCH_STATE_{run_id}",
        "prefix": f"pes.bench.{run_id}.state",
        "consumer": "bench-monitor",
        "events_stream": f"PES_BENCH_EVENTS_{run_id}",
        "events_subject": f"pes.bench.{run_id}.events",
    }
    _setup(args.database, args.symbols)
    figures = asyncio.run(_load_test(args, names))
    return {
        "benchmark": "monitor",
        "load_average": f"{os.getloadavg()[0]:.1f}",
        "machine": machine_info(),
        "config": {
            "portfolios": args.portfolios,
            "symbols": args.symbols,
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "breach_probability": args.breach,
            "batch_max": args.batch_max,
            "batch_ms": args.batch_ms,
            "database": args.database.split(":", 1)[0],
        },
        "targets": {"rate_per_s": 10_000, "lost": 0, "latency_p99_ms": 100},
        "results": figures,
    }


def parser() -> argparse.ArgumentParser:
    """The command line (`--help`)."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.monitor",
        description="Load test of pes monitor: publish state updates at a fixed rate, count "
        "what the monitor processed and time update-to-event latency.",
    )
    p.add_argument("--portfolios", type=int, default=1000, help="portfolios (default 1000)")
    p.add_argument("--rate", type=float, default=10_000, help="updates per second (10000)")
    p.add_argument("--seconds", type=float, default=60, help="publishing time (default 60)")
    p.add_argument("--symbols", type=int, default=100, help="universe size (default 100)")
    p.add_argument(
        "--breach", type=float, default=0.02, help="snapshots with a name over the cap (0.02)"
    )
    p.add_argument("--batch-max", type=int, default=1000, help="pes monitor --batch-max")
    p.add_argument("--batch-ms", type=float, default=20, help="pes monitor --batch-ms")
    p.add_argument(
        "--nats",
        default=os.environ.get("PES_TEST_NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server (default PES_TEST_NATS_URL or nats://127.0.0.1:4222)",
    )
    p.add_argument("--database", help="database URL (default: a new SQLite file)")
    p.add_argument("--drain-timeout", type=float, default=300, help="longest wait to catch up")
    p.add_argument("--start-timeout", type=float, default=120, help="longest wait for start")
    p.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"results file ({RESULTS}): a run replaces the one of the same portfolios, rate "
        "and seconds, and is kept beside the others",
    )
    p.add_argument(
        "--write-docs", action="store_true", help="put the runs' table into docs/monitor.md"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test; exit 1 when an update was lost."""
    args = parser().parse_args(argv)
    for name in ("portfolios", "rate", "seconds", "symbols", "batch_max"):
        if getattr(args, name) <= 0:
            print(f"--{name.replace('_', '-')}: must be > 0", file=sys.stderr)
            return 2
    if args.symbols < HELD:
        print(f"--symbols: at least {HELD} (each portfolio holds {HELD})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.database is None:
            args.database = f"sqlite:///{Path(tmp) / 'monitor.db'}"
        args.log = Path(tmp) / "monitor.log"
        try:
            results = run(args)
        finally:
            if args.log.exists():
                tail = args.log.read_text(errors="replace").splitlines()[-15:]
                print("\n".join(["pes monitor log (tail):", *tail]), file=sys.stderr)
    runs = [r for r in runs_in(args.output) if not same_case(r, results)] + [results]
    runs.sort(key=lambda r: (r["config"]["rate_per_s"], r["config"]["portfolios"]))
    print(table(runs))
    lat = results["results"]["latency_ms"]
    if lat.get("to_commit_p50") is not None:
        print(
            "this run's latency by part, p50 / p99 ms: publish to the round's commit "
            f"{lat['to_commit_p50']:.0f} / {lat['to_commit_p99']:.0f}, commit to the event's "
            f"arrival {lat['commit_to_event_p50']:.0f} / {lat['commit_to_event_p99']:.0f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"runs": runs}, indent=2) + "\n", encoding="utf-8")
    if args.write_docs:
        write_docs(runs)
    return 1 if results["results"]["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Requests/s of one and of several uvicorn workers on PostgreSQL, under the same bounded load.

    python -m benchmarks.workers --database-url postgresql+psycopg://user@127.0.0.1:5432/db
        [--workers 1,2] [--rounds 3] [--requests 600] [--concurrency 8]
        [--connection keep-alive|close] [--n 500] [--output FILE]

For each worker count, in alternating rounds (so that load from elsewhere on the machine
hits every count alike), the service is started as `uvicorn api.http.app:create_app
--factory --workers K` on a free port of 127.0.0.1, on a schema of its own in the given
PostgreSQL database (created, then dropped; `PGOPTIONS=-csearch_path=...`), events off.
The case's policies, universe and factor model are registered through the API; every worker
is warmed; then `--requests` check-only requests by reference (the registered universe and
a `prices` map, `benchmarks.reference_http`'s `universe+prices` form, each with a unique
`decision_id`, so every one is stored) are sent `--concurrency` at a time, each connection
sending its next request as soon as its answer is in. With keep-alive connections, which
worker serves a connection is settled when it opens, so a few connections can load the
workers unevenly (the CPU of each worker shows it); `--connection close` opens a
connection per request, taken by whichever worker accepts it first, as behind a balancer.

The load generator is deliberately cheap: the requests are encoded before the clock starts
and sent as raw HTTP/1.1 over asyncio streams in this process (no HTTP client library).
On a small machine it still competes with the workers for the cores, so the run reports
what it cost: the CPU seconds of this process, of each worker process, of the PostgreSQL
backends serving the service (when the database runs on this machine) and of the whole
machine (`/proc`; Linux), per request. Prints a Markdown table (requests/s, p50, p99 and max
latency, CPU per request) and the ratio of each worker count's requests/s to the first's,
and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cases import build_case
from benchmarks.http_load import NO_GLOBAL_LIMITS, _free_port, _wait_ready
from benchmarks.reference_http import FORMS, Decisions, _register
from benchmarks.report import git_commit

__all__ = ["main", "run"]

_ROOT = Path(__file__).resolve().parent.parent
_TICK_S = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def workers_of(pid: int) -> list[int]:
    """uvicorn's worker processes under its supervisor `pid` (spawned by multiprocessing)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = int(_stat(int(entry.name))[1]) == pid
                if child and b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return sorted(found)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 once it is gone."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores; /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) * _TICK_S


def _generator_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Backends:
    """CPU seconds of the PostgreSQL backends serving connections named `application`.

    The pool opens and closes connections under load, so the backends are looked up
    (`pg_stat_activity`) and their CPU read (`/proc`) every `period_s` in a thread: a
    backend there at the start counts from its value then, one that appears later from
    zero, one that ends with its last reading. The database server must run on this machine;
    its WAL writer and checkpointer are not counted.
    """

    def __init__(self, url: str, application: str, period_s: float = 0.2) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(url, pool_size=1)
        self._query = sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
        self._application = application
        self._period_s = period_s
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self, *, first: bool = False) -> None:
        with self._engine.connect() as conn:
            pids = [int(p) for (p,) in conn.execute(self._query, {"name": self._application})]
        for pid in pids:
            cpu = _cpu_s(pid)
            if cpu > 0:
                self._start.setdefault(pid, cpu if first else 0.0)
                self._last[pid] = max(cpu, self._last.get(pid, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            self._sample()

    def read(self) -> float:
        """Stop sampling; CPU seconds the backends spent since the start."""
        self._stop.set()
        self._thread.join()
        self._sample()
        self._engine.dispose()
        return sum(self._last[pid] - self._start[pid] for pid in self._last)


class CpuClock:
    """CPU seconds spent since it was made: each worker, the generator, PostgreSQL, the machine."""

    def __init__(self, workers: list[int], backends: Backends) -> None:
        self.workers = workers
        self.backends = backends
        self.start = self._now()

    def _now(self) -> dict[str, float]:
        now = {f"worker {k + 1}": _cpu_s(pid) for k, pid in enumerate(self.workers)}
        now["generator"] = _generator_s()
        now["machine"] = _machine_busy_s()
        return now

    def read(self) -> dict[str, float]:
        """CPU seconds of each part since the clock was made."""
        end = self._now()
        spent = {name: end[name] - self.start[name] for name in end}
        spent["postgres"] = self.backends.read()
        return {name: spent[name] for name in [*end, "postgres"] if name != "machine"} | {
            "machine": spent["machine"]
        }


def _start(url: str, schema: str, workers: int, port: int, log: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PES_")}
    env |= NO_GLOBAL_LIMITS
    env |= {
        "PES_DATABASE_URL": url,
        "PES_EVENTS": "none",
        "PES_LOG_LEVEL": "WARNING",
        "PGOPTIONS": f"-csearch_path={schema}",
        "PGAPPNAME": schema,  # names the service's backends in pg_stat_activity
    }
    command = [sys.executable, "-m", "uvicorn", "api.http.app:create_app", "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(command, cwd=_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _schema(url: str, name: str, *, create: bool) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if create:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            else:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()


def _encode(body: bytes, port: int, *, close: bool) -> bytes:
    head = (
        f"POST /api/v1/validate HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        + ("connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection and read its answer (Content-Length)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _load(port: int, requests: list[bytes], concurrency: int, *, close: bool) -> list[float]:
    """Send every request over `concurrency` connections; the latency of each, in ms.

    With `close`, every request has a connection of its own (its connect is timed too).
    """
    queue = list(reversed(requests))
    latencies: list[float] = []

    async def send(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, t0: float
    ) -> None:
        status, content = await _exchange(reader, writer, request)
        latencies.append(1000 * (time.perf_counter() - t0))
        if status != 200:
            raise RuntimeError(f"status {status}: {content[:300]!r}")

    async def connection() -> None:
        if close:
            while queue:
                request, t0 = queue.pop(), time.perf_counter()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    await send(reader, writer, request, t0)
                finally:
                    writer.close()
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                await send(reader, writer, queue.pop(), time.perf_counter())
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies


def _round(
    url: str, workers: int, requests: int, concurrency: int, n: int, *, close: bool
) -> dict[str, Any]:
    """One server with `workers` workers under the load; its summary."""
    import httpx

    case = build_case(n)
    form = FORMS["universe+prices"]
    token = uuid.uuid4().hex[:8]
    schema = f"pes_bench_{token}"
    warmup = 4 * concurrency
    port = _free_port()
    bodies = [
        _encode(
            json.dumps(form(case, i, f"w{workers}-{token}-{i}", Decisions())).encode(),
            port,
            close=close,
        )
        for i in range(warmup + requests)
    ]
    _schema(url, schema, create=True)
    try:
        with tempfile.TemporaryDirectory(prefix="pes-workers-") as tmp:
            log_path = Path(tmp) / "server.log"
            with log_path.open("wb") as log:
                server = _start(url, schema, workers, port, log)
                try:
                    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                        _wait_ready(client, server, log_path, timeout=120.0)
                        _register(client, case)
                    processes = [server.pid] if workers == 1 else workers_of(server.pid)
                    if len(processes) != workers:
                        raise RuntimeError(f"{len(processes)} worker processes, not {workers}")
                    asyncio.run(_load(port, bodies[:warmup], concurrency, close=close))
                    clock = CpuClock(processes, Backends(url, schema))
                    started = time.perf_counter()
                    latencies = asyncio.run(_load(port, bodies[warmup:], concurrency, close=close))
                    elapsed = time.perf_counter() - started
                    cpu = clock.read()
                finally:
                    _stop(server)
    finally:
        _schema(url, schema, create=False)
    return {
        "workers": workers,
        "requests": requests,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(requests / elapsed, 2),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "max_ms": round(float(np.max(latencies)), 2),
        "cpu_ms_per_request": {k: round(1000 * v / requests, 3) for k, v in cpu.items()},
    }


def run(
    url: str,
    *,
    workers: list[int],
    rounds: int,
    requests: int,
    concurrency: int,
    n: int,
    close: bool = False,
) -> dict[str, Any]:
    """Alternate the worker counts for `rounds` rounds; every round's summary, and medians."""
    results = []
    for r in range(rounds):
        for k in workers:
            result = _round(url, k, requests, concurrency, n, close=close)
            print(f"round {r + 1}, {k} worker(s): {_line(result)}", file=sys.stderr, flush=True)
            results.append(result)
    medians = {
        k: float(np.median([x["requests_per_s"] for x in results if x["workers"] == k]))
        for k in workers
    }
    return {
        "n": n,
        "git": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "server": "uvicorn api.http.app:create_app --factory --workers K, PostgreSQL "
        "(own schema), events none",
        "client": f"raw HTTP/1.1 over asyncio streams, {concurrency} concurrent "
        + ("connections, a new one per request" if close else "keep-alive connections")
        + ", loopback, this process",
        "requests_per_s_median": medians,
        "ratio_to_first": {k: round(v / medians[workers[0]], 3) for k, v in medians.items()},
        "rounds": results,
    }


def _line(result: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_request"].items())
    return (
        f"{result['requests_per_s']} requests/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms; CPU ms per request: {cpu}"
    )


def table(summary: dict[str, Any]) -> str:
    """The rounds as a Markdown table, then the median ratio of requests/s."""
    lines = [
        "| round | workers | requests/s | p50 ms | p99 ms | max ms | CPU ms / request: "
        "workers, generator, postgres, machine |",
        "|---|---|---|---|---|---|---|",
    ]
    workers = list(summary["requests_per_s_median"])
    for k, row in enumerate(summary["rounds"]):
        cpu = row["cpu_ms_per_request"]
        served = " + ".join(str(v) for name, v in cpu.items() if name.startswith("worker"))
        lines.append(
            f"| {k // len(workers) + 1} | {row['workers']} | {row['requests_per_s']} | "
            f"{row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} | {served}, "
            f"{cpu['generator']}, {cpu['postgres']}, {cpu['machine']} |"
        )
    ratios = ", ".join(
        f"{k} workers: {summary['requests_per_s_median'][k]:.1f} requests/s "
        f"({summary['ratio_to_first'][k]}x)"
        for k in workers
    )
    return "\n".join([*lines, "", f"Medians: {ratios}"])


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.workers",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PES_BENCH_DATABASE_URL"),
        help="PostgreSQL URL (default $PES_BENCH_DATABASE_URL); a schema is made and dropped",
    )
    parser.add_argument("--workers", default="1,2", help="worker counts (default 1,2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every count (3)")
    parser.add_argument("--requests", type=int, default=600, help="timed requests a round")
    parser.add_argument("--concurrency", type=int, default=8, help="connections (default 8)")
    parser.add_argument(
        "--connection",
        choices=["keep-alive", "close"],
        default="keep-alive",
        help="keep-alive: each of the connections stays open (which worker serves it is "
        "settled when it opens); close: a new connection per request, taken by whichever "
        "worker accepts first (default keep-alive)",
    )
    parser.add_argument("--n", type=int, default=500, help="universe size (default 500)")
    parser.add_argument("--output", type=Path, help="write the summary JSON here")
    args = parser.parse_args(argv)
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL")
    summary = run(
        args.database_url,
        workers=[int(k) for k in args.workers.split(",")],
        rounds=args.rounds,
        requests=args.requests,
        concurrency=args.concurrency,
        n=args.n,
        close=args.connection == "close",
    )
    print(table(summary))
    if args.output is not None:
        args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

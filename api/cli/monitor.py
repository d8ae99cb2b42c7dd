"""`pes monitor`: consume portfolio-state updates and keep the holdings' violations."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from api.cli.common import EXIT_BAD_INPUT, open_store, settings
from api.settings import Settings
from api.store import NotFound, Store

__all__ = ["add_parser"]

log = logging.getLogger("pes.monitor")


def _monitor(args: argparse.Namespace) -> int:
    config = settings(args)  # a bad option or PES_* value: exit 2 naming it
    if not config.monitor_universe:
        print(
            "pes monitor: --universe: required (or PES_MONITOR_UNIVERSE): the registered "
            "universe the portfolios are checked over (pes universes apply FILE)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    store = open_store(args)
    logging.getLogger().setLevel(config.log_level if not args.verbose else logging.INFO)
    try:
        universe = store.universes.get(config.monitor_universe).definition
    except NotFound as exc:
        print(f"pes monitor: --universe: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    policies = [p.definition for p in store.policies.list(enabled=True)]
    if not policies:
        print(
            "pes monitor: no enabled policy is stored: nothing to monitor "
            "(pes policies apply FILE)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    return asyncio.run(_run(store, config, policies, universe.instruments, args.events))


async def _run(
    store: Store, config: Settings, policies: list[Any], instruments: list[Any], events: str
) -> int:
    from api.events import NatsPublisher
    from api.monitor import Book, ConsumerMismatch, Monitor, MonitorConfig, StoredSource

    book = Book(policies, instruments, store.portfolios.lineage)
    publisher = (
        NatsPublisher(
            config.nats_url, config.nats_stream, config.nats_subject, config.nats_notify_prefix
        )
        if events == "nats"
        else None
    )
    monitor = Monitor(
        store,
        MonitorConfig(
            nats_url=config.nats_url,
            stream=config.monitor_stream,
            prefix=config.monitor_prefix,
            consumer=config.monitor_consumer,
            batch_max=config.monitor_batch_max,
            batch_ms=config.monitor_batch_ms,
            ack_wait_s=config.monitor_ack_wait_s,
            keep_updates_h=config.monitor_keep_updates_h,
            reload_s=config.monitor_reload_s,
            gc_freeze=config.gc_freeze,
        ),
        book,
        publisher,
        StoredSource(store, config.monitor_universe or ""),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await monitor.run(stop)
    except ConsumerMismatch as exc:
        print(f"pes monitor: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as exc:
        print(f"pes monitor: cannot reach NATS at {config.nats_url}: {exc!r}", file=sys.stderr)
        return 1
    log.info("monitor stopped after %d rounds", monitor.rounds)
    return 0


def add_parser(commands: Any) -> None:
    """Register `pes monitor`."""
    monitor = commands.add_parser(
        "monitor",
        help="re-check portfolios as state updates arrive from NATS JetStream",
        description="Consume position snapshots (<prefix>.positions.<portfolio>) and price "
        "ticks (<prefix>.prices) from a JetStream durable consumer, re-check the portfolios "
        "each update touches against the stored policies (micro-batched through the batch "
        "checker), open and cure violations and emit policy_breach_detected / "
        "policy_breach_cleared events through the outbox. Runs until SIGTERM or SIGINT "
        "(the round in flight is committed and acknowledged; exit 0). See docs/monitor.md.",
    )
    monitor.add_argument(
        "--database-url",
        "--database",
        dest="database_url",
        metavar="URL",
        help="SQLAlchemy URL (default: PES_DATABASE_URL or sqlite:///pes.db)",
    )
    monitor.add_argument(
        "--nats", metavar="URL", help="NATS server (default: PES_NATS_URL or nats://127.0.0.1:4222)"
    )
    monitor.add_argument(
        "--universe",
        metavar="ID",
        help="registered universe the portfolios are checked over (PES_MONITOR_UNIVERSE)",
    )
    monitor.add_argument(
        "--batch-max", type=int, metavar="N", help="most updates one round applies (default 1000)"
    )
    monitor.add_argument(
        "--batch-ms",
        type=float,
        metavar="MS",
        help="longest wait for more updates after a round's first (default 20)",
    )
    monitor.add_argument(
        "--ack-wait",
        type=float,
        metavar="S",
        help="seconds before JetStream redelivers an update not acknowledged (a monitor "
        "killed mid-round); set when the consumer is created (default 60)",
    )
    monitor.add_argument(
        "--keep-updates",
        type=float,
        metavar="H",
        help="hours an applied update's id is kept to recognise a redelivery (default 24; "
        "older ids are deleted while the monitor runs)",
    )
    monitor.add_argument(
        "--reload-s",
        type=float,
        metavar="S",
        help="how often the stored policies, portfolio tree and universe are compared with "
        "the monitor's; on a change every portfolio is re-checked (default 5)",
    )
    monitor.add_argument(
        "--stream", help="JetStream stream of the updates (default PES_STATE; created if absent)"
    )
    monitor.add_argument("--prefix", help="subject prefix of the updates (default pes.state)")
    monitor.add_argument(
        "--consumer", help="durable consumer name (default pes-monitor; created if absent)"
    )
    monitor.add_argument(
        "--events",
        choices=["nats", "none"],
        default="nats",
        help="relay the outbox's events to NATS (default; PES_NATS_STREAM, "
        "PES_NATS_SUBJECT) or leave them to `pes serve`'s relay",
    )
    monitor.set_defaults(handler=_monitor)

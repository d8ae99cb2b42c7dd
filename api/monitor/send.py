"""`python -m api.monitor.send FILE [--nats URL]`: publish updates from a JSON-lines file.

Each line is `{"subject": ..., "update": {...}}`; the update is published to JetStream on
its subject and the stream's acknowledgement awaited (the stream must exist: `pes
monitor` creates it at start). For trying the monitor out and for scripts; producers in
production publish the same JSON on the same subjects (docs/monitor.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            found.append((str(item["subject"]), dict(item["update"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}:{number}: expected {{'subject', 'update'}}: {exc}") from None
    return found


async def _send(url: str, messages: list[tuple[str, dict[str, Any]]], pause: float) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for subject, update in messages:
            ack = await js.publish(subject, json.dumps(update).encode(), timeout=5)
            print(f"{subject} {update.get('update_id')} -> {ack.stream} #{ack.seq}")
            await asyncio.sleep(pause)
    finally:
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Publish every line of the file, in order."""
    parser = argparse.ArgumentParser(
        prog="python -m api.monitor.send",
        description="Publish portfolio-state updates from a JSON-lines file to NATS JetStream.",
    )
    parser.add_argument("file", type=Path, help='JSON lines: {"subject": ..., "update": {...}}')
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server URL")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between two updates (the monitor checks each portfolio's state at the "
        "end of a round: updates closer than --batch-ms apart are checked together)",
    )
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"file: {args.file} is not a file", file=sys.stderr)
        return 2
    if not args.pause >= 0:
        print("--pause: must be >= 0", file=sys.stderr)
        return 2
    asyncio.run(_send(args.nats, _lines(args.file), args.pause))
    return 0


if __name__ == "__main__":
    sys.exit(main())

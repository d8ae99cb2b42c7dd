"""Content-addressed, compressed JSON: each distinct value stored once.

A value's key is the SHA-256 of its canonical JSON (keys sorted, compact, through orjson:
key order and number spelling do not matter); the row holds that JSON zlib-compressed.
Writers touch `last_used_at` of every blob they reference, in their own transaction; a
purge deletes only blobs unused since its cutoff that no log entry references, so a blob
a concurrent writer is about to reference is either touched first (and kept: PostgreSQL
re-checks the purge's condition on the row the writer locked) or deleted first (and
written again by the writer's insert).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from api.store.tables import request_blobs as table

__all__ = ["Blob", "canonical", "load", "put"]

LEVEL = 1
"""zlib's fastest level. Every validation stores its request's new parts (prices, positions)
before it answers: for the 36 KB request of the benchmark at n = 500, level 1 compresses in
0.13 ms to 12.9 KB, the default level 6 in 0.71 ms to 11.7 KB. A tenth more bytes in the
log is worth half a millisecond of every answer."""


class Blob:
    """One value ready to store: its canonical JSON, digest and part name."""

    __slots__ = ("digest", "json", "part")

    def __init__(self, part: str, value: Any) -> None:
        self.part = part
        self.json = canonical(value)
        self.digest = hashlib.sha256(self.json).hexdigest()


def canonical(value: Any) -> bytes:
    """The canonical JSON of a JSON value: keys sorted, compact."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def put(conn: Connection, blobs: Iterable[Blob], now: datetime) -> None:
    """Store the blobs not yet stored and touch the others, in `conn`'s transaction."""
    pending = {b.digest: b for b in blobs}
    if not pending:
        return
    touched = set(
        conn.execute(
            table.update()
            .where(table.c.digest.in_(sorted(pending)))
            .values(last_used_at=now)
            .returning(table.c.digest)
        ).scalars()
    )
    missing = [pending[d] for d in sorted(pending) if d not in touched]
    if not missing:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.digest], set_={"last_used_at": insert.excluded.last_used_at}
        ),
        [
            {
                "digest": b.digest,
                "part": b.part,
                "size": len(b.json),
                "content": zlib.compress(b.json, LEVEL),
                "created_at": now,
                "last_used_at": now,
            }
            for b in missing
        ],
    )


def load(conn: Connection, digests: Iterable[str]) -> Mapping[str, Any]:
    """The values of `digests` (decompressed and parsed), by digest; absent ones are left out."""
    wanted = sorted(set(digests))
    out: dict[str, Any] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            sa.select(table.c.digest, table.c.content).where(
                table.c.digest.in_(wanted[start : start + 500])
            )
        )
        for digest, content in rows:
            out[digest] = orjson.loads(zlib.decompress(content))
    return out

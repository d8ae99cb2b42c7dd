"""Database connection and migrations (applied at start-up).

Every wait on PostgreSQL is bounded, so a database that stops answering (down, or a network
that accepts the connection and then moves no data) turns into an error within seconds,
never a request that hangs:

- connecting: libpq's ``connect_timeout``;
- a statement: the server cancels it after ``statement_timeout``; the client gives up on an
  answer that has not come ``IO_GRACE_S`` later (a black hole never sends the cancel's
  error), closes the connection and raises ``OperationalError``;
- a dead peer on an idle connection: TCP keepalives, and ``tcp_user_timeout`` for data sent
  but never acknowledged;
- a free connection from the pool: ``pool_timeout``.

Migrations are serialized between processes (several workers starting at once on an empty
database): on PostgreSQL by a transaction-scoped advisory lock keyed by the database and
schema, on SQLite by an exclusive lock on a file beside the database.
"""

from __future__ import annotations

import fcntl
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "DatabaseTimeouts",
    "alembic_config",
    "connect",
    "listen_connector",
    "lock_file",
    "migrate",
    "schema_key",
    "write_turn",
]

log = logging.getLogger("pes.store")

MIGRATIONS = Path(__file__).with_name("migrations")

IO_GRACE_S = 2.0
"""How long past ``statement_timeout`` the client still waits for the server's answer (the
cancelled statement's error normally arrives within milliseconds)."""
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 10, 5, 3
"""An idle connection to a vanished server is found dead after about 25 s."""
MIGRATION_TIMEOUT_S = 300.0
"""Bound of one migration run, waiting for another process's migration included."""
LOCK_POLL_S = 0.05

MIGRATION_LOCK = 0x5E5_0001
"""First key of the migrations' advisory lock (the second is `schema_key`)."""


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long to wait on the database before giving up (seconds).

    Parameters
    ----------
    connect_s
        Establishing a connection (libpq enforces at least 2 s).
    statement_s
        One statement; the client waits `IO_GRACE_S` longer for the server's answer.
    pool_s
        Waiting for a free connection from the pool.
    """

    connect_s: float = 5.0
    statement_s: float = 10.0
    pool_s: float = 5.0


_WAIT_TAKES_TIMEOUT = "timeout" in inspect.signature(psycopg.Connection.wait).parameters


class _BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every network wait (execute, fetch, commit, ping) ends.

    A wait longer than `io_timeout_s` closes the connection (its state is unknown) and
    raises ``OperationalError``; SQLAlchemy then sees a disconnect and drops it from the
    pool.
    """

    io_timeout_s: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        """Psycopg's wait, bounded by `io_timeout_s` unless the caller gave a timeout."""
        bound = self.io_timeout_s
        if timeout is not None or bound is None:  # psycopg's own bounded waits: untouched
            return super().wait(gen, interval, timeout=timeout)
        try:
            return super().wait(gen, interval, timeout=bound)
        except psycopg.errors._WaitTimeout as exc:
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"no answer from the database within {bound:.1f} s: connection closed"
            ) from exc


def _normalize(url: str) -> str:
    """Use psycopg 3 for a plain postgresql:// URL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite(url: str, timeouts: DatabaseTimeouts) -> Engine:
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, pool_timeout=timeouts.pool_s
    )

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def _postgresql(url: str, timeouts: DatabaseTimeouts) -> Engine:
    io_timeout_s = timeouts.statement_s + IO_GRACE_S
    connect_args = {
        "connect_timeout": max(2, round(timeouts.connect_s)),
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": round(io_timeout_s * 1000),
    }
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeouts.pool_s,
        connect_args=connect_args,
    )
    statement_ms = str(round(timeouts.statement_s * 1000))

    @sa.event.listens_for(engine, "do_connect")
    def _bounded(_dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
        if not _WAIT_TAKES_TIMEOUT:  # an older psycopg: server-side bounds only
            return None
        connection = _BoundedConnection.connect(*cargs, **cparams)
        connection.io_timeout_s = io_timeout_s
        return connection

    @sa.event.listens_for(engine, "connect")
    def _statement_timeout(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # A session setting rather than libpq's `options`, which would replace PGOPTIONS.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [statement_ms])
        dbapi_connection.commit()

    return engine


def listen_connector(
    engine: Engine, timeouts: DatabaseTimeouts | None = None
) -> Callable[[], psycopg.Connection[Any]]:
    """Connections of their own to `engine`'s PostgreSQL database, for `LISTEN`.

    Out of the pool (a listener holds its connection for the process's life), in
    autocommit (a notification is delivered between transactions), with the pool's bounds
    on connecting and the same keepalives, so a vanished server is noticed on an idle one.
    """
    timeouts = timeouts or DatabaseTimeouts()
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    params = {
        **cparams,
        "autocommit": True,
        "connect_timeout": max(2, round(timeouts.connect_s)),
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_S,
        "keepalives_interval": KEEPALIVE_INTERVAL_S,
        "keepalives_count": KEEPALIVE_COUNT,
    }

    def connect() -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(*cargs, **params)

    return connect


def connect(url: str, timeouts: DatabaseTimeouts | None = None) -> Engine:
    """An engine for `url` (SQLite file or PostgreSQL), with sane pool settings and bounds."""
    url = _normalize(url)
    timeouts = timeouts or DatabaseTimeouts()
    if url.startswith("sqlite"):
        return _sqlite(url, timeouts)
    return _postgresql(url, timeouts)


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    # Alembic is imported where a migration needs it: a tenth of a second that a process
    # which never opens the store (`pes --help`) need not pay.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # configparser treats "%" as interpolation: escape it (URL-encoded passwords, options).
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def schema_key() -> sa.ColumnElement[int]:
    """An advisory-lock key for the current database and schema (SQL expression).

    Services on other schemas or databases of the same server never contend for it.
    """
    name = sa.func.current_database() + "." + sa.func.coalesce(sa.func.current_schema(), "")
    return sa.func.hashtext(name)


@contextmanager
def lock_file(path: Path, *, wait_s: float | None) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created if absent) while the block runs.

    Yields False, holding nothing, when `wait_s` is 0 and another process (or another open
    of the file) holds it; raises TimeoutError when it is still held after `wait_s` > 0.
    `wait_s` None waits as long as it takes.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        held = _flock(fd, path, wait_s)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock(fd: int, path: Path, wait_s: float | None) -> bool:
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                if wait_s == 0:
                    return False
                raise TimeoutError(f"{path} still locked after {wait_s:.0f} s") from None
        time.sleep(LOCK_POLL_S)


_WRITE_TURNS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_WRITE_TURNS_LOCK = threading.Lock()


@contextmanager
def write_turn(engine: Engine) -> Iterator[None]:
    """Take this process's turn to write to a SQLite database (nothing on PostgreSQL).

    SQLite has one writer at a time, and a writer that finds the lock taken sleeps in the
    driver's busy handler (1, 2, 5, 10 … 100 ms between tries). Against a writer that
    commits back to back (the monitor at 2,000 updates/s commits 180 rounds a second) the
    sleeper kept losing: the outbox relay's mark of published events waited 11 to 110 ms,
    and every event behind it. Writers of one process that wait here are woken as soon as
    the lock is released instead; writers in other processes still meet the busy handler.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    with _WRITE_TURNS_LOCK:
        turn = _WRITE_TURNS.setdefault(engine, threading.Lock())
    with turn:
        yield


def sqlite_file(engine: Engine) -> Path | None:
    """The SQLite database's file, or None (PostgreSQL, in-memory database)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename: the path ends at the query
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


@contextmanager
def _migration_bounds(connection: Connection) -> Iterator[None]:
    """Lift the per-statement bounds: a migration (or waiting for another) may take longer."""
    dbapi = connection.connection.dbapi_connection
    before = getattr(dbapi, "io_timeout_s", None)
    connection.execute(
        sa.text("SELECT set_config('statement_timeout', :ms, true)"),
        {"ms": str(round(MIGRATION_TIMEOUT_S * 1000))},
    )
    if isinstance(dbapi, _BoundedConnection):
        dbapi.io_timeout_s = MIGRATION_TIMEOUT_S + IO_GRACE_S
    try:
        yield
    finally:
        if isinstance(dbapi, _BoundedConnection):
            dbapi.io_timeout_s = before


def _upgrade(engine: Engine) -> str | None:
    from alembic import command  # see alembic_config
    from alembic.runtime.migration import MigrationContext

    config = alembic_config(engine)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            with _migration_bounds(connection):
                # Held to the end of this transaction: a second process waits here, then
                # finds the schema at head and has nothing to do.
                connection.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK, schema_key()))
                )
                before = MigrationContext.configure(connection).get_current_revision()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                return before
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return before


def migrate(engine: Engine) -> bool:
    """Bring the schema to the latest migration; True when it was empty (just created).

    Safe to run from several processes at once on the same database.
    """
    path = sqlite_file(engine)
    if path is None:
        before = _upgrade(engine)
    else:
        # SQLite runs Alembic's DDL outside a transaction (pysqlite only opens one for
        # DML), so a transaction-level lock cannot serialize it: lock a file beside it.
        with lock_file(path.with_name(path.name + ".migrate-lock"), wait_s=MIGRATION_TIMEOUT_S):
            before = _upgrade(engine)
    return before is None

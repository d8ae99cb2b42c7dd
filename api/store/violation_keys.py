"""How the store finds a portfolio's violations by key, and locks the portfolios it writes.

A validation touches few of its portfolio's violations: those of its passive breaches'
keys (counted again) and those of the keys it found compliant (cured). Both are searched
key by key in the index by portfolio, status and key (migration 0009), and the keys to cure
come from `live_violation_keys` (0010), so neither read grows with the violations a
portfolio keeps live. Every writer of violations takes its portfolios' locks first
(`lock_portfolios`), so that no two writers wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.store.tables import live_violation_keys, policy_violations
from api.store.violation_records import LIVE

__all__ = ["ids_to_cure", "lock_portfolios", "of_keys", "portfolios_of"]


def lock_portfolios(conn: Connection, portfolio_ids: Iterable[str]) -> None:
    """Take the violation lock of each portfolio for the transaction (PostgreSQL only).

    Every transaction that changes violations takes the locks of their portfolios first,
    before it reads or writes any of them: writers of one portfolio then run one after the
    other, and writers of different portfolios touch different rows (the violations and,
    through the triggers of 0010, their `live_violation_keys` rows). Without it a
    validation that opens one key's violation and cures another's could wait in a cycle
    with a review action or the monitor changing the same two keys in the other order.
    The locks are taken in the order of their numbers, so that two writers of several
    portfolios never wait on each other in a cycle either. SQLite has one writer at a time.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({f"pes.violations:{pid}" for pid in portfolio_ids})
    if keys:
        conn.execute(_LOCK_PORTFOLIOS, {"keys": keys})


_LOCK_PORTFOLIOS = sa.text(
    "SELECT pg_advisory_xact_lock(h) FROM ("
    "SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(CAST(:keys AS text[])) AS u(k)"
    ") AS locks ORDER BY h"
)
"""PostgreSQL evaluates a volatile function of the select list after the sort."""


def portfolios_of(conn: Connection, violation_ids: Iterable[int]) -> list[str]:
    """The portfolios of the violations `violation_ids` (a violation never changes portfolio)."""
    ids = sorted(set(violation_ids))
    if not ids:
        return []
    t = policy_violations
    query = sa.select(t.c.portfolio_id).where(t.c.id.in_(ids)).distinct()
    return list(conn.execute(query).scalars())


def ids_to_cure(
    conn: Connection,
    portfolio_id: str,
    policies_checked: Iterable[str],
    seen_keys: set[tuple[str, str, str]],
) -> list[int]:
    """The live violations of the checked policies whose key was found compliant, locked.

    The keys come first, from `live_violation_keys` (kept by triggers, migration 0010): a
    read bounded by the portfolio's live keys, where comparing the keys of its live
    violations walked every one of them (active breaches stay live, one per decision, while
    their key keeps breaching). Only when some key is to be cured are its violations read.
    """
    k, t = live_violation_keys, policy_violations
    keys = conn.execute(
        sa.select(k.c.policy_name, k.c.violation_type, k.c.subject_key).where(
            k.c.portfolio_id == portfolio_id,
            k.c.policy_name.in_(sorted(set(policies_checked))),
            sa.tuple_(k.c.policy_name, k.c.violation_type, k.c.subject_key).not_in(
                sorted(seen_keys)
            ),
        )
    ).all()
    live = (t.c.portfolio_id == portfolio_id) & t.c.status.in_(LIVE)
    ids: list[int] = []
    for where in of_keys([(r[0], r[1], r[2]) for r in keys]):
        ids.extend(conn.execute(sa.select(t.c.id).where(live, *where).with_for_update()).scalars())
    return sorted(ids)


def of_keys(keys: list[tuple[str, str, str]]) -> list[list[sa.ColumnElement[bool]]]:
    """Conditions selecting the violations of `keys`: one list per query (none, one or two).

    Each column of the key has an IN list of its own beside the exact tuples, so that the
    index by portfolio, status and key (0009) is searched key by key, never walked. The
    keys without a subject take a query of their own: `subject IS NULL OR subject = ''`
    beside an IN list of subjects stops the search at the violation type.
    """
    t = policy_violations
    with_subject = sorted(key for key in keys if key[2])
    without = sorted((name, kind) for name, kind, subject in keys if not subject)
    queries: list[list[sa.ColumnElement[bool]]] = []
    if with_subject:
        queries.append(
            [
                t.c.policy_name.in_(sorted({key[0] for key in with_subject})),
                t.c.violation_type.in_(sorted({key[1] for key in with_subject})),
                t.c.subject.in_(sorted({key[2] for key in with_subject})),
                sa.tuple_(t.c.policy_name, t.c.violation_type, t.c.subject).in_(with_subject),
            ]
        )
    if without:
        queries.append(
            [
                t.c.policy_name.in_(sorted({key[0] for key in without})),
                t.c.violation_type.in_(sorted({key[1] for key in without})),
                sa.func.coalesce(t.c.subject, "") == "",
                sa.tuple_(t.c.policy_name, t.c.violation_type).in_(without),
            ]
        )
    return queries

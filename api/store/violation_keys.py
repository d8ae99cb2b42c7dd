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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from api.store.tables import live_violation_keys, policy_violations
from api.store.violation_records import LIVE

__all__ = ["ids_to_cure", "live_of_keys", "lock_portfolios", "portfolios_of"]


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
    params = {
        "portfolio": portfolio_id,
        "checked": sorted(set(policies_checked)),
        "seen": sorted(seen_keys),
    }
    keys = [(r[0], r[1], r[2]) for r in conn.execute(_KEYS_TO_CURE, params)]
    return sorted(r.id for r in live_of_keys(conn, portfolio_id, keys, keyed=False))


def live_of_keys(
    conn: Connection, portfolio_id: str, keys: Iterable[tuple[str, str, str]], *, keyed: bool
) -> list[sa.Row[Any]]:
    """The live violations of `portfolio_id` with one of `keys`, locked for the transaction.

    Rows of `id` alone, or with `keyed` of `id, policy_name, violation_type, subject`. Each
    column of the key has an IN list of its own beside the exact tuples, so that the index
    by portfolio, status and key (0009) is searched key by key, never walked. The keys
    without a subject take a query of their own: `subject IS NULL OR subject = ''` beside
    an IN list of subjects stops the search at the violation type. The statements are built
    once, their lists bound per call: building them per validation (the IN lists and their
    tuples) cost more than running them.
    """
    keys = list(keys)
    with_subject = sorted(key for key in keys if key[2])
    without = sorted((name, kind) for name, kind, subject in keys if not subject)
    statements = _KEYED if keyed else _IDS
    rows: list[sa.Row[Any]] = []
    if with_subject:
        params = {
            "portfolio": portfolio_id,
            "names": sorted({key[0] for key in with_subject}),
            "types": sorted({key[1] for key in with_subject}),
            "subjects": sorted({key[2] for key in with_subject}),
            "keys": with_subject,
        }
        rows.extend(conn.execute(statements[0], params))
    if without:
        params = {
            "portfolio": portfolio_id,
            "names": sorted({key[0] for key in without}),
            "types": sorted({key[1] for key in without}),
            "keys": without,
        }
        rows.extend(conn.execute(statements[1], params))
    return rows


def _expanding(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(name, expanding=True)


_k, _t = live_violation_keys, policy_violations
_KEYS_TO_CURE = sa.select(_k.c.policy_name, _k.c.violation_type, _k.c.subject_key).where(
    _k.c.portfolio_id == sa.bindparam("portfolio"),
    _k.c.policy_name.in_(_expanding("checked")),
    sa.tuple_(_k.c.policy_name, _k.c.violation_type, _k.c.subject_key).not_in(_expanding("seen")),
)
_LIVE = (_t.c.portfolio_id == sa.bindparam("portfolio")) & _t.c.status.in_(LIVE)
_WITH_SUBJECT = (
    _t.c.policy_name.in_(_expanding("names")),
    _t.c.violation_type.in_(_expanding("types")),
    _t.c.subject.in_(_expanding("subjects")),
    sa.tuple_(_t.c.policy_name, _t.c.violation_type, _t.c.subject).in_(_expanding("keys")),
)
_WITHOUT_SUBJECT = (
    _t.c.policy_name.in_(_expanding("names")),
    _t.c.violation_type.in_(_expanding("types")),
    sa.func.coalesce(_t.c.subject, "") == "",
    sa.tuple_(_t.c.policy_name, _t.c.violation_type).in_(_expanding("keys")),
)


def _locked_reads(*columns: sa.ColumnElement[Any]) -> tuple[sa.Select[Any], sa.Select[Any]]:
    return (
        sa.select(*columns).where(_LIVE, *_WITH_SUBJECT).with_for_update(),
        sa.select(*columns).where(_LIVE, *_WITHOUT_SUBJECT).with_for_update(),
    )


_IDS = _locked_reads(_t.c.id)
_KEYED = _locked_reads(_t.c.id, _t.c.policy_name, _t.c.violation_type, _t.c.subject)

"""The live keys of each portfolio, with how many live violations each has.

A validation cures the live violations of the policies it checked whose key it found
compliant. Finding them compared the validation's keys with every live violation of the
portfolio (from the index of 0009): active breaches are recorded one per decision and stay
live while their key keeps breaching, so that read grew with every such decision.
`live_violation_keys` holds one row per (portfolio, policy, violation type, subject) with
a live (open or acknowledged) violation and their number; a null subject is the key "".
The database keeps it exact: triggers on `policy_violations` count a row in when it is
inserted live or becomes live (or changes key while live) and out when it stops being
live, changes key or is deleted; a key whose count reaches 0 is deleted, so the table is
bounded by the live keys. Triggers rather than bookkeeping in Python: violations change
status from several places (the lifecycle, the monitor, bulk actions), and a writer that
forgot the table would leave it wrong for good.

On SQLite, a later migration that rebuilds `policy_violations` in batch mode (a copy under
a new name) drops these triggers with the old table: it must create them again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_LIVE = "('open', 'acknowledged')"
_KEY = ("portfolio_id", "policy_name", "violation_type", "subject_key")
_TRACKED = "status, portfolio_id, policy_name, violation_type, subject"
"""The columns whose change can move a violation in or out of a live key."""


def _same_key(old: str, new: str) -> str:
    return (
        f"{new}.portfolio_id = {old}.portfolio_id AND {new}.policy_name = {old}.policy_name "
        f"AND {new}.violation_type = {old}.violation_type "
        f"AND coalesce({new}.subject, '') = coalesce({old}.subject, '')"
    )


def _count_in(row: str) -> str:
    """Add one to the key of `row` (NEW), creating it at 1."""
    return (
        "INSERT INTO live_violation_keys "
        "(portfolio_id, policy_name, violation_type, subject_key, live_count) "
        f"VALUES ({row}.portfolio_id, {row}.policy_name, {row}.violation_type, "
        f"coalesce({row}.subject, ''), 1) "
        f"ON CONFLICT ({', '.join(_KEY)}) "
        "DO UPDATE SET live_count = live_violation_keys.live_count + 1"
    )


def _count_out(row: str) -> str:
    """Take one from the key of `row` (OLD), deleting it at 0 (two statements)."""
    where = (
        f"portfolio_id = {row}.portfolio_id AND policy_name = {row}.policy_name "
        f"AND violation_type = {row}.violation_type "
        f"AND subject_key = coalesce({row}.subject, '')"
    )
    return (
        f"UPDATE live_violation_keys SET live_count = live_count - 1 WHERE {where}; "
        f"DELETE FROM live_violation_keys WHERE {where} AND live_count = 0"
    )


_UNCHANGED = f"NEW.status IN {_LIVE} AND OLD.status IN {_LIVE} AND {_same_key('OLD', 'NEW')}"
"""An update that leaves a violation live under the same key (acknowledge, escalate...)."""

_SQLITE_TRIGGERS = {
    "policy_violations_live_keys_insert": (
        f"AFTER INSERT ON policy_violations FOR EACH ROW WHEN NEW.status IN {_LIVE}",
        _count_in("NEW"),
    ),
    "policy_violations_live_keys_delete": (
        f"AFTER DELETE ON policy_violations FOR EACH ROW WHEN OLD.status IN {_LIVE}",
        _count_out("OLD"),
    ),
    "policy_violations_live_keys_leave": (
        f"AFTER UPDATE OF {_TRACKED} ON policy_violations FOR EACH ROW "
        f"WHEN OLD.status IN {_LIVE} AND NOT ({_UNCHANGED})",
        _count_out("OLD"),
    ),
    "policy_violations_live_keys_enter": (
        f"AFTER UPDATE OF {_TRACKED} ON policy_violations FOR EACH ROW "
        f"WHEN NEW.status IN {_LIVE} AND NOT ({_UNCHANGED})",
        _count_in("NEW"),
    ),
}

_PG_FUNCTION = f"""
CREATE FUNCTION live_violation_keys_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN {_LIVE} THEN
        {_count_out("OLD")};
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN {_LIVE} THEN
        {_count_in("NEW")};
    END IF;
    RETURN NULL;
END;
$$
"""

_PG_TRIGGERS = {
    "policy_violations_live_keys_insert": f"AFTER INSERT ON policy_violations FOR EACH ROW "
    f"WHEN (NEW.status IN {_LIVE})",
    "policy_violations_live_keys_delete": f"AFTER DELETE ON policy_violations FOR EACH ROW "
    f"WHEN (OLD.status IN {_LIVE})",
    "policy_violations_live_keys_update": f"AFTER UPDATE OF {_TRACKED} ON policy_violations "
    f"FOR EACH ROW WHEN ((OLD.status IN {_LIVE} OR NEW.status IN {_LIVE}) "
    f"AND NOT ({_UNCHANGED}))",
}


def upgrade() -> None:
    """Apply the migration."""
    op.create_table(
        "live_violation_keys",
        sa.Column("portfolio_id", sa.String(length=200), nullable=False),
        sa.Column("policy_name", sa.String(length=100), nullable=False),
        sa.Column("violation_type", sa.String(length=64), nullable=False),
        sa.Column("subject_key", sa.Text(), nullable=False),
        sa.Column("live_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, name=op.f("pk_live_violation_keys")),
    )
    # The triggers first: on PostgreSQL creating one locks `policy_violations` against
    # writes until this migration commits, so no violation changes between the count below
    # and the triggers taking over (a server of the previous version may still be writing).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for name, when in _PG_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION live_violation_keys_count()")
    else:
        for name, (when, body) in _SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body}; END")
    op.execute(
        "INSERT INTO live_violation_keys "
        "(portfolio_id, policy_name, violation_type, subject_key, live_count) "
        "SELECT portfolio_id, policy_name, violation_type, coalesce(subject, ''), count(*) "
        f"FROM policy_violations WHERE status IN {_LIVE} "
        "GROUP BY portfolio_id, policy_name, violation_type, coalesce(subject, '')"
    )


def downgrade() -> None:
    """Revert the migration."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in _PG_TRIGGERS if postgresql else _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (" ON policy_violations" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION live_violation_keys_count()")
    op.drop_table("live_violation_keys")

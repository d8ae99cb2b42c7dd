"""The monitor: processed update ids, the monitored state, its status; monitor violations.

`pes monitor` consumes portfolio-state updates (position snapshots, price ticks) from the
broker. `monitor_updates` records every update it applied, by id, in the transaction of the
update's effect, so a redelivered update changes nothing. `monitor_positions` and
`monitor_prices` keep the latest state (updates already acknowledged are not delivered
again after a restart); `monitor_status` one row per monitor (heartbeat, lag, counters).
A violation the monitor opens belongs to no validation: `policy_violations.validation_id`
becomes nullable and `source` says who opened it (validation | monitor).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply the migration."""
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.alter_column("validation_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="validation")
        )
    op.create_table(
        "monitor_updates",
        sa.Column("update_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("portfolio_id", sa.String(length=200), nullable=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_monitor_updates")),
    )
    op.create_index("ix_monitor_updates_processed_at", "monitor_updates", ["processed_at"])
    op.create_table(
        "monitor_positions",
        sa.Column("portfolio_id", sa.String(length=200), nullable=False),
        sa.Column("update_id", sa.String(length=200), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("positions", _JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portfolio_id", name=op.f("pk_monitor_positions")),
    )
    op.create_table(
        "monitor_prices",
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("update_id", sa.String(length=200), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("symbol", name=op.f("pk_monitor_prices")),
    )
    op.create_table(
        "monitor_status",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_update_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lag", sa.BigInteger(), nullable=False),
        sa.Column("portfolios", sa.Integer(), nullable=False),
        sa.Column("consumed", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("checks", sa.BigInteger(), nullable=False),
        sa.Column("breaches_opened", sa.BigInteger(), nullable=False),
        sa.Column("breaches_cleared", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("consumer", name=op.f("pk_monitor_status")),
    )


def downgrade() -> None:
    """Revert the migration (monitor violations, which have no validation, are deleted)."""
    op.drop_table("monitor_status")
    op.drop_table("monitor_prices")
    op.drop_table("monitor_positions")
    op.drop_index("ix_monitor_updates_processed_at", table_name="monitor_updates")
    op.drop_table("monitor_updates")
    op.execute(
        "DELETE FROM webhook_deliveries WHERE violation_id IN "
        "(SELECT id FROM policy_violations WHERE validation_id IS NULL)"
    )
    op.execute(
        "DELETE FROM violation_transitions WHERE violation_id IN "
        "(SELECT id FROM policy_violations WHERE validation_id IS NULL)"
    )
    op.execute("DELETE FROM policy_violations WHERE validation_id IS NULL")
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.drop_column("source")
        batch_op.alter_column("validation_id", existing_type=sa.Integer(), nullable=False)

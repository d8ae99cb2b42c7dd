"""The violation lifecycle and its escalation: status, level, history, rules, webhooks.

`policy_violations` gains `status` (open | acknowledged | resolved | cured; rows resolved
before it read as resolved), `escalation_level`, who acknowledged it and when, and
`occurrences` / `last_seen_at` / `last_decision_id` (a passive breach found again by a
later validation updates its open violation instead of adding one).
`violation_transitions` holds one row per transition (who, when, why). The columns the
older server reads are kept (`resolved` stays in step with the status), so it still
reads the table. `escalation_rule_versions` holds the escalation rules, one row per
applied version; `webhook_deliveries` each webhook call an escalation asks for, with its
attempts and outcome.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply the migration."""
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="open")
        )
        batch_op.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=200)))
        batch_op.add_column(
            sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("last_decision_id", sa.String(length=200)))
        batch_op.create_index("ix_policy_violations_status", ["status"])
    op.execute("UPDATE policy_violations SET status = 'resolved' WHERE resolved")
    op.execute(
        "UPDATE policy_violations SET last_seen_at = created_at, last_decision_id = decision_id"
    )
    op.create_table(
        "violation_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("violation_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decision_id", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["violation_id"],
            ["policy_violations.id"],
            name=op.f("fk_violation_transitions_violation_id_policy_violations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_violation_transitions")),
    )
    op.create_index(
        "ix_violation_transitions_violation_id", "violation_transitions", ["violation_id"]
    )
    op.create_table(
        "escalation_rule_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", _JSON, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_rule_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_escalation_rule_versions_version")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("violation_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["violation_id"],
            ["policy_violations.id"],
            name=op.f("fk_webhook_deliveries_violation_id_policy_violations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    """Revert the migration."""
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("escalation_rule_versions")
    op.drop_index("ix_violation_transitions_violation_id", table_name="violation_transitions")
    op.drop_table("violation_transitions")
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_violations_status")
        for column in (
            "last_decision_id",
            "last_seen_at",
            "occurrences",
            "acknowledged_by",
            "acknowledged_at",
            "escalation_level",
            "status",
        ):
            batch_op.drop_column(column)

"""Initial schema: policies, versions, validations, violations, event outbox.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the migration."""
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_event_outbox_event_id")),
    )
    with op.batch_alter_table("event_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_outbox_published_at"), ["published_at"], unique=False
        )

    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "diff",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("policy_name", "version", name="uq_policy_versions_name_version"),
    )
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_versions_policy_name"), ["policy_name"], unique=False
        )

    op.create_table(
        "portfolio_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_name", sa.String(length=100), nullable=False),
        sa.Column("policy_type", sa.String(length=32), nullable=False),
        sa.Column("enforcement_level", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portfolio_policies")),
        sa.UniqueConstraint("policy_name", name=op.f("uq_portfolio_policies_policy_name")),
    )
    with op.batch_alter_table("portfolio_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_portfolio_policies_enabled"), ["enabled"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_portfolio_policies_policy_type"), ["policy_type"], unique=False
        )

    op.create_table(
        "validations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(length=200), nullable=False),
        sa.Column("portfolio_id", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("is_compliant", sa.Boolean(), nullable=False),
        sa.Column("compliance_score", sa.Float(), nullable=False),
        sa.Column(
            "response",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_validations")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_validations_decision_id")),
    )
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_validations_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_validations_portfolio_id"), ["portfolio_id"], unique=False
        )

    op.create_table(
        "policy_violations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("validation_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.String(length=200), nullable=False),
        sa.Column("portfolio_id", sa.String(length=200), nullable=False),
        sa.Column("policy_name", sa.String(length=100), nullable=False),
        sa.Column("policy_type", sa.String(length=32), nullable=False),
        sa.Column("violation_type", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("breach", sa.String(length=16), nullable=False),
        sa.Column("enforcement_level", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("limit_value", sa.Float(), nullable=False),
        sa.Column("pre_trade", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["validation_id"],
            ["validations.id"],
            name=op.f("fk_policy_violations_validation_id_validations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_violations")),
    )
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_violations_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_violations_policy_name"), ["policy_name"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_violations_portfolio_id"), ["portfolio_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_violations_resolved"), ["resolved"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_violations_severity"), ["severity"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_violations_validation_id"), ["validation_id"], unique=False
        )


def downgrade() -> None:
    """Revert the migration."""
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_violations_validation_id"))
        batch_op.drop_index(batch_op.f("ix_policy_violations_severity"))
        batch_op.drop_index(batch_op.f("ix_policy_violations_resolved"))
        batch_op.drop_index(batch_op.f("ix_policy_violations_portfolio_id"))
        batch_op.drop_index(batch_op.f("ix_policy_violations_policy_name"))
        batch_op.drop_index(batch_op.f("ix_policy_violations_created_at"))

    op.drop_table("policy_violations")
    with op.batch_alter_table("validations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_validations_portfolio_id"))
        batch_op.drop_index(batch_op.f("ix_validations_created_at"))

    op.drop_table("validations")
    with op.batch_alter_table("portfolio_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portfolio_policies_policy_type"))
        batch_op.drop_index(batch_op.f("ix_portfolio_policies_enabled"))

    op.drop_table("portfolio_policies")
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_versions_policy_name"))

    op.drop_table("policy_versions")
    with op.batch_alter_table("event_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_outbox_published_at"))

    op.drop_table("event_outbox")

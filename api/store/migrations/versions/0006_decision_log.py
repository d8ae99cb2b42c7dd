"""The decision log: `request_blobs`, `decision_log` and `decision_log_blobs`.

New tables only (nothing existing changes), so an older server still reads the store;
validations stored before it have no log entry and are not replayable.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply the migration."""
    op.create_table(
        "request_blobs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("part", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_request_blobs")),
    )
    op.create_index(
        op.f("ix_request_blobs_last_used_at"), "request_blobs", ["last_used_at"], unique=False
    )
    op.create_table(
        "decision_log",
        sa.Column("validation_id", sa.Integer(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parts", _JSON, nullable=False),
        sa.Column("policy_versions", _JSON, nullable=False),
        sa.Column("global_policy_version", sa.Integer(), nullable=True),
        sa.Column("reference_data", _JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["validation_id"],
            ["validations.id"],
            name=op.f("fk_decision_log_validation_id_validations"),
        ),
        sa.PrimaryKeyConstraint("validation_id", name=op.f("pk_decision_log")),
    )
    op.create_index(op.f("ix_decision_log_logged_at"), "decision_log", ["logged_at"], unique=False)
    op.create_table(
        "decision_log_blobs",
        sa.Column("validation_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["validation_id"],
            ["decision_log.validation_id"],
            name=op.f("fk_decision_log_blobs_validation_id_decision_log"),
        ),
        sa.ForeignKeyConstraint(
            ["digest"],
            ["request_blobs.digest"],
            name=op.f("fk_decision_log_blobs_digest_request_blobs"),
        ),
        sa.PrimaryKeyConstraint("validation_id", "digest", name=op.f("pk_decision_log_blobs")),
    )
    op.create_index(
        op.f("ix_decision_log_blobs_digest"), "decision_log_blobs", ["digest"], unique=False
    )


def downgrade() -> None:
    """Revert the migration."""
    op.drop_index(op.f("ix_decision_log_blobs_digest"), table_name="decision_log_blobs")
    op.drop_table("decision_log_blobs")
    op.drop_index(op.f("ix_decision_log_logged_at"), table_name="decision_log")
    op.drop_table("decision_log")
    op.drop_index(op.f("ix_request_blobs_last_used_at"), table_name="request_blobs")
    op.drop_table("request_blobs")

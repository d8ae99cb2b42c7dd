"""Violations keep their `suggested_adjustment`: a nullable JSON column.

Rows stored before it have none (null), which the API reports as it reports a violation
without a suggestion; nothing else changes, so an older server still reads the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply the migration."""
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suggested_adjustment", _JSON, nullable=True))


def downgrade() -> None:
    """Revert the migration."""
    with op.batch_alter_table("policy_violations", schema=None) as batch_op:
        batch_op.drop_column("suggested_adjustment")

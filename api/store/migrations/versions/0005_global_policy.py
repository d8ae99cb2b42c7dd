"""The global policy: the `global_policy_versions` table (one row per version).

Nothing is written here: the service stores version 1 from the `QT_*` environment the
first time it opens a store without one (api/store/global_policy.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply the migration."""
    op.create_table(
        "global_policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("content", _JSON, nullable=False),
        sa.Column("diff", _JSON, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_policy_versions")),
        sa.UniqueConstraint("version", name=op.f("uq_global_policy_versions_version")),
    )


def downgrade() -> None:
    """Revert the migration."""
    op.drop_table("global_policy_versions")

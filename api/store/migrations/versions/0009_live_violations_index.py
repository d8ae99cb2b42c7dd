"""An index on the violations by portfolio, status and key.

Each validation reads its portfolio's live violations (open or acknowledged) to count a
passive breach again or cure what it found compliant. With the index on `portfolio_id`
alone that read scanned every violation the portfolio ever had, cured and resolved ones
too, so a validation's cost grew with the portfolio's history. The key's columns make the
index covering: the live rows' keys are compared without reading the rows.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply the migration."""
    op.create_index(
        "ix_policy_violations_live_keys",
        "policy_violations",
        ["portfolio_id", "status", "policy_name", "violation_type", "subject"],
    )


def downgrade() -> None:
    """Revert the migration."""
    op.drop_index("ix_policy_violations_live_keys", table_name="policy_violations")

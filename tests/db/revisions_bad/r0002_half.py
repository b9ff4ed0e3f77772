"""A test revision that creates a table and then fails: the upgrade must leave neither behind.

Revision ID: t0002bad
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "t0002bad"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("mig_half", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO no_such_table_at_all VALUES (1)")


def downgrade() -> None:
    op.drop_table("mig_half")

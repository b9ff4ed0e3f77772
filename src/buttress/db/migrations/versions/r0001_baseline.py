"""Baseline: the root every buttress revision chains from.

It creates no table. Upgrading to it records ``0001`` in ``buttress_alembic_version``, so a database
that has run ``buttress db upgrade`` once is known to buttress; the jobs and files revisions chain from
here and create their tables on the next upgrade.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = ("buttress",)
depends_on = None


def upgrade() -> None:
    """Nothing to create: the version table alembic writes is the whole baseline."""


def downgrade() -> None:
    """Nothing to drop."""

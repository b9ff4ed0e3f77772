"""Files: their metadata and tags, the quota counters and the in-flight reservations (``buttress.files``).

A file's bytes live in its store (a directory or an S3 bucket) under ``key``; its row here is what makes
it exist: a save publishes the bytes, then writes the row and settles its reservation in one transaction.
``buttress_file_usage`` holds one counter row per quota scope (``*`` for the whole store, ``owner:<name>``
per owner): settled bytes and files, bytes reserved by saves in flight, and an optional quota override.
A reservation row names the temp data and the final key of a save in flight, with the host and process
that own it, so the sweeper can remove what a crashed save left and give its space back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.Float(precision=53)


def upgrade() -> None:
    """Create the four tables and the indexes retention and the sweeper read."""
    op.create_table(
        "buttress_files",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, nullable=False, unique=True),
        sa.Column("owner", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("archive_key", sa.Text),
        sa.Column("compressed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("accessed_at", _TIME, nullable=False),
        sa.Column("archived_at", _TIME),
    )
    op.create_index("buttress_files_owner", "buttress_files", ["owner", "created_at", "id"])
    op.create_index("buttress_files_age", "buttress_files", ["state", "created_at", "id"])
    op.create_index("buttress_files_access", "buttress_files", ["state", "accessed_at", "id"])
    op.create_index("buttress_files_archive_key", "buttress_files", ["archive_key"])
    op.create_table(
        "buttress_file_tags",
        sa.Column(
            "file_id", sa.Text, sa.ForeignKey("buttress_files.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tag", sa.Text, primary_key=True),
    )
    op.create_index("buttress_file_tags_tag", "buttress_file_tags", ["tag", "file_id"])
    op.create_table(
        "buttress_file_usage",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("used", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("files", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("quota", sa.BigInteger),
    )
    op.create_table(
        "buttress_file_reservations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("temp", sa.Text),
        sa.Column("key", sa.Text),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
    )
    op.create_index("buttress_file_reservations_expiry", "buttress_file_reservations", ["expires_at"])


def downgrade() -> None:
    """Drop the file tables (the stored bytes stay where they are)."""
    op.drop_table("buttress_file_reservations")
    op.drop_table("buttress_file_usage")
    op.drop_table("buttress_file_tags")
    op.drop_table("buttress_files")

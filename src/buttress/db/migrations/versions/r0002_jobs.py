"""Jobs: the queue, the workers, the schedules and their ticks (``buttress.jobs``).

Times are float epoch seconds from the injected clock, so SQLite and PostgreSQL store them alike and a
test's clock reaches the rows. A job's ``lease_token`` grows by one on every lease: the fencing token
that turns a late completion by a worker that lost its lease into a no-op. The partial unique index on
``idem_key`` folds a duplicate defer while one job of that key is active; the unique ``(schedule,
fire_at)`` of the ticks makes a schedule's fire happen once however many schedulers race.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
_TIME = sa.Float(precision=53)
_PENDING = "status IN ('queued', 'scheduled', 'retrying')"
_ACTIVE = "idem_key IS NOT NULL AND status IN ('queued', 'scheduled', 'running', 'retrying')"


def upgrade() -> None:
    """Create the four tables and the indexes the fetch, the folding and the sweeper use."""
    op.create_table(
        "buttress_jobs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("run_at", _TIME, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("lease_token", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_expires", _TIME),
        sa.Column("worker", sa.Text),
        sa.Column("idem_key", sa.Text),
        sa.Column("progress", _TIME),
        sa.Column("message", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
        sa.Column("timeout", _TIME),
        sa.Column("result_ttl", _TIME),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME),
        sa.Column("finished_at", _TIME),
        sa.Column("expires_at", _TIME),
        sa.Column("schedule", sa.Text),
        sa.Column("fire_at", _TIME),
    )
    op.create_index(
        "buttress_jobs_fetch",
        "buttress_jobs",
        ["queue", sa.text("priority DESC"), "id"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )
    op.create_index(
        "buttress_jobs_idem_key",
        "buttress_jobs",
        ["idem_key"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE),
        sqlite_where=sa.text(_ACTIVE),
    )
    op.create_index(
        "buttress_jobs_running",
        "buttress_jobs",
        ["worker", "lease_expires"],
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.create_index("buttress_jobs_status", "buttress_jobs", ["status", "queue"])
    op.create_index("buttress_jobs_expires", "buttress_jobs", ["expires_at"])
    op.create_index("buttress_jobs_schedule", "buttress_jobs", ["schedule", "status"])
    op.create_table(
        "buttress_job_workers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("queues", sa.Text, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("heartbeat_at", _TIME, nullable=False),
    )
    op.create_table(
        "buttress_job_schedules",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("catch_up", sa.Text, nullable=False),
        sa.Column("overlap", sa.Text, nullable=False),
        sa.Column("anchor", _TIME, nullable=False),
        sa.Column("last_fire_at", _TIME),
        sa.Column("next_fire_at", _TIME),
        sa.Column("active", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "buttress_job_ticks",
        sa.Column("schedule", sa.Text, nullable=False),
        sa.Column("fire_at", _TIME, nullable=False),
        sa.Column("job_id", _ID),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("schedule", "fire_at", name="buttress_job_ticks_once"),
    )


def downgrade() -> None:
    """Drop the four tables (and with them every job, schedule and tick)."""
    op.drop_table("buttress_job_ticks")
    op.drop_table("buttress_job_schedules")
    op.drop_table("buttress_job_workers")
    op.drop_table("buttress_jobs")

"""Idempotency keys of job-creating requests, and erasures that always point at a real job.

``idempotency_keys`` remembers, per owner and ``Idempotency-Key``, the request's fingerprint and the
answer it got (202, body, Location); it is written by the same statement that creates the job, so a
crash cannot leave one without the other. ``erasures.job_id`` gets a deferrable foreign key to ``jobs``:
the erasure row and its job are written by one statement (the check runs at commit), and the audit row
outlives a job that is deleted later (SET NULL). At most one erasure of a subject is open at a time (a
unique partial index), so concurrent requests agree on one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_sha256", sa.Text(), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name="idempotency_keys_job_id_fkey",
            ondelete="SET NULL",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("owner_id", "key"),
    )
    op.create_index("idempotency_keys_created", "idempotency_keys", ["created_at"])
    # an open erasure whose job never got written (the old two-transaction acceptance) can never complete
    op.execute(
        "DELETE FROM erasures WHERE completed_at IS NULL AND (job_id IS NULL OR job_id NOT IN (SELECT id FROM jobs))"
    )
    op.execute("UPDATE erasures SET job_id = NULL WHERE job_id IS NOT NULL AND job_id NOT IN (SELECT id FROM jobs)")
    op.create_index(
        "erasures_one_open", "erasures", ["subject_id"], unique=True, postgresql_where=sa.text("completed_at IS NULL")
    )
    op.create_foreign_key(
        "erasures_job_id_fkey",
        "erasures",
        "jobs",
        ["job_id"],
        ["id"],
        ondelete="SET NULL",
        deferrable=True,
        initially="DEFERRED",
    )


def downgrade() -> None:
    op.drop_constraint("erasures_job_id_fkey", "erasures", type_="foreignkey")
    op.drop_index("erasures_one_open", table_name="erasures")
    op.drop_index("idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")

"""The spine: owners, API keys, jobs and the job event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The event id must be taken only after the writing transaction has an xid: the event feed
# treats a gap below a visible id as "maybe still being written" exactly while the
# transactions of its snapshot are in progress, which holds only if the xid came first.
NEXT_EVENT_ID = """
CREATE FUNCTION atelier_next_event_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN nextval('job_events_id_seq');
END
$$
"""


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        _timestamp("created_at"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "owner_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("owners.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("prefix", sa.Text, nullable=False, unique=True),
        sa.Column("key_hash", sa.Text, nullable=False),
        _timestamp("created_at"),
        _timestamp("revoked_at", nullable=True),
    )
    op.create_table(
        "jobs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "owner_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="queued"),
        sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("result", postgresql.JSONB),
        sa.Column("error", postgresql.JSONB),
        sa.Column("progress", postgresql.JSONB),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("worker_id", sa.Text),
        sa.Column("backend", sa.Text),
        sa.Column("webhook_url", sa.Text),
        _timestamp("run_after"),
        _timestamp("heartbeat_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("started_at", nullable=True),
        _timestamp("finished_at", nullable=True),
        _timestamp("updated_at"),
        sa.CheckConstraint("status IN ('queued','running','succeeded','failed','cancelled')", name="jobs_status_valid"),
    )
    op.create_index(
        "jobs_claim_order",
        "jobs",
        ["kind", sa.text("priority DESC"), "created_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("jobs_running_heartbeat", "jobs", ["heartbeat_at"], postgresql_where=sa.text("status = 'running'"))
    op.create_index("jobs_owner_listing", "jobs", ["owner_id", "kind", sa.text("created_at DESC")])

    op.execute("CREATE SEQUENCE job_events_id_seq AS bigint")
    op.execute(NEXT_EVENT_ID)
    op.create_table(
        "job_events",
        sa.Column("id", sa.BigInteger, primary_key=True, server_default=sa.text("atelier_next_event_id()")),
        sa.Column(
            "job_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("owner_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        _timestamp("created_at"),
    )
    op.execute("ALTER SEQUENCE job_events_id_seq OWNED BY job_events.id")
    op.create_index("job_events_by_job", "job_events", ["job_id", "id"])
    op.create_index("job_events_by_owner", "job_events", ["owner_id", "id"])


def downgrade() -> None:
    op.drop_table("job_events")
    op.execute("DROP FUNCTION atelier_next_event_id()")
    op.drop_table("jobs")
    op.drop_table("api_keys")
    op.drop_table("owners")

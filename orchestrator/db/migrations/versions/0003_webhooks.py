"""Webhook deliveries: a trigger queues one whenever a job with a webhook_url ends.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Every way a job can end (worker, reaper, API cancel) goes through an UPDATE of jobs.status,
# so the trigger is the one place that sees them all.
QUEUE_DELIVERY = """
CREATE FUNCTION atelier_queue_webhook() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.webhook_url IS NOT NULL
       AND NEW.status IN ('succeeded', 'failed', 'cancelled')
       AND OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO webhook_deliveries (job_id, url, job_status) VALUES (NEW.id, NEW.webhook_url, NEW.status);
        PERFORM pg_notify('atelier_webhooks', NEW.id::text);
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("job_status", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending','delivered','failed')", name="webhook_deliveries_status_valid"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.execute(QUEUE_DELIVERY)
    op.execute(
        "CREATE TRIGGER jobs_queue_webhook AFTER UPDATE OF status ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION atelier_queue_webhook()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_queue_webhook ON jobs")
    op.execute("DROP FUNCTION atelier_queue_webhook()")
    op.drop_index("webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")

"""Standard Webhooks: per-owner signing secrets (rotation keeps the previous one for a while), message ids
that stay the same across retries and redeliveries, and redeliveries linked to what they redeliver.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("secret LIKE 'whsec_%'", name="webhook_secrets_format"),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "webhook_secrets_current",
        "webhook_secrets",
        ["owner_id"],
        unique=True,
        postgresql_where=sa.text("expires_at IS NULL"),
    )
    op.add_column(
        "webhook_deliveries",
        sa.Column("message_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    )
    op.add_column("webhook_deliveries", sa.Column("redelivery_of", sa.UUID(), nullable=True))
    op.create_foreign_key(
        "webhook_deliveries_redelivery_of_fkey",
        "webhook_deliveries",
        "webhook_deliveries",
        ["redelivery_of"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("webhook_deliveries_job", "webhook_deliveries", ["job_id"])


def downgrade() -> None:
    op.drop_index("webhook_deliveries_job", table_name="webhook_deliveries")
    op.drop_constraint("webhook_deliveries_redelivery_of_fkey", "webhook_deliveries", type_="foreignkey")
    op.drop_column("webhook_deliveries", "redelivery_of")
    op.drop_column("webhook_deliveries", "message_id")
    op.drop_index("webhook_secrets_current", table_name="webhook_secrets")
    op.drop_table("webhook_secrets")

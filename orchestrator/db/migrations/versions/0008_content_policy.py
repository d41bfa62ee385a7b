"""Content policy: the audit log, and API keys' admin and adult-content flags.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("admin", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.add_column("api_keys", sa.Column("adult_content", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.create_table(
        "audit_events",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=True),
        sa.Column("key_id", sa.UUID(), nullable=True),
        sa.Column("request_id", sa.UUID(), nullable=True),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column(
            "fields", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("content_sha256", sa.Text(), nullable=True),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("audit_events_listing", "audit_events", [sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("audit_events_owner", "audit_events", ["owner_id", sa.text("created_at DESC")])


def downgrade() -> None:
    op.drop_index("audit_events_owner", table_name="audit_events")
    op.drop_index("audit_events_listing", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_column("api_keys", "adult_content")
    op.drop_column("api_keys", "admin")

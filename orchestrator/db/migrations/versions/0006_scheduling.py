"""Scheduling: what each job needs loaded, when it was passed over for affinity, owners' fair shares and
numbered running slots (exact per-owner caps across processes).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("affinity_key", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("passed_over_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("owner_slot", sa.SmallInteger(), nullable=True))
    op.create_index(
        "jobs_owner_slots",
        "jobs",
        ["owner_id", "owner_slot"],
        unique=True,
        postgresql_where=sa.text("status = 'running' AND owner_slot IS NOT NULL"),
    )
    op.create_table(
        "owner_shares",
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("vtime", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("weight", sa.Float(), server_default=sa.text("1"), nullable=False),
        sa.CheckConstraint("weight > 0", name="owner_shares_weight_positive"),
        sa.ForeignKeyConstraint(["owner_id"], ["owners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner_id"),
    )
    op.create_table(
        "fair_clock",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("vtime", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("id", name="fair_clock_one_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO fair_clock (id, vtime) VALUES (true, 0)")


def downgrade() -> None:
    op.drop_table("fair_clock")
    op.drop_table("owner_shares")
    op.drop_index("jobs_owner_slots", table_name="jobs")
    op.drop_column("jobs", "owner_slot")
    op.drop_column("jobs", "passed_over_at")
    op.drop_column("jobs", "affinity_key")

"""Generation images whose bytes wait in the database until storage holds them durably.

``generation_images.pending_data`` is set by the statement that ends a generation when its images were written
to storage without an fsync (local disk): the rows, the job's success and the bytes commit together, and a
sweep later stores the bytes durably and clears the column (see ``orchestrator.generation.pending_images``).
A crash of the machine before that sweep loses nothing: the sweep after the restart writes them again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("generation_images", sa.Column("pending_data", sa.LargeBinary(), nullable=True))
    op.create_index(
        "generation_images_pending",
        "generation_images",
        ["created_at"],
        postgresql_where=sa.text("pending_data IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("generation_images_pending", table_name="generation_images")
    op.drop_column("generation_images", "pending_data")

"""Photo fingerprints for duplicate checks that survive rotation, mirroring, crops and re-saves.

A compact per-photo record (hash, grey thumbnail, ORB keypoints and descriptors; about 25 KB, see
trainer.dataset.dedupe) so that an upload is checked against a subject's photos without reading them back.
Photos stored before this have none and take part through their perceptual hash only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("fingerprint", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("photos", "fingerprint")

"""jobs client: who submitted a job for the per-client quota (GRADHEALTH_MAX_JOBS_PER_CLIENT): its
API key's owner, or with keys off its client address.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("client", sa.String(160), nullable=True))
    op.create_index("ix_jobs_client_status", "jobs", ["client", "status"])


def downgrade() -> None:
    op.drop_index("ix_jobs_client_status", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("client")

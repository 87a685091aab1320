"""webhooks pause: a count of deliveries failed in a row, and why and when a webhook was paused.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite and PostgreSQL alike); the server default fills existing rows.
    op.add_column("webhooks", sa.Column("consecutive_failures", sa.Integer(), nullable=False,
                                        server_default=sa.text("0")))
    op.add_column("webhooks", sa.Column("disabled_reason", sa.Text(), nullable=True))
    op.add_column("webhooks", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("disabled_at")
        batch.drop_column("disabled_reason")
        batch.drop_column("consecutive_failures")

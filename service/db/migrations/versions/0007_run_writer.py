"""runs writer: the process writing a live run, so that a second one on its name is refused.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN (SQLite and PostgreSQL alike): runs stored before it have no writer.
    op.add_column("runs", sa.Column("writer", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("writer")

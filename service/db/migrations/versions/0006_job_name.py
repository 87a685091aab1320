"""jobs name: what a job checked (a spec's ``name``, an upload's file name), for lists and the UI.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain nullable ADD COLUMN (SQLite and PostgreSQL alike): jobs stored before it have no name.
    op.add_column("jobs", sa.Column("name", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("name")

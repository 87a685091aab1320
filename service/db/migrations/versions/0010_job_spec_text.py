"""jobs spec_text: the text an architecture spec was submitted in (YAML or JSON, as the caller wrote
it), so that a report's lines are the caller's own and not those of the spec re-serialised as JSON.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("spec_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("spec_text")

"""job counters kept as jobs finish (metrics stay cheap at any history size).

The counters start from the jobs already finished (a service upgraded with history keeps its
totals): the one time the whole job table is read for metrics.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("labels", sa.String(255), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    from gradhealth.jobs import counters  # the same increments as a finishing job adds

    jobs = sa.table("jobs", sa.column("kind", sa.String()), sa.column("status", sa.String()),
                    sa.column("started_at", sa.DateTime(timezone=True)),
                    sa.column("finished_at", sa.DateTime(timezone=True)),
                    sa.column("finding_codes", sa.Text()))
    connection = op.get_bind()
    # Streamed in batches (a server-side cursor on PostgreSQL): the history may be large.
    # Set on the statement: Connection.execution_options would stick to the connection.
    result = connection.execute(
        sa.select(jobs.c.kind, jobs.c.status, jobs.c.started_at, jobs.c.finished_at,
                  jobs.c.finding_codes).where(jobs.c.status.in_(("succeeded", "failed", "cancelled")))
        .execution_options(yield_per=10_000))
    counters.backfill(connection, (tuple(row) for row in result))


def downgrade() -> None:
    op.drop_table("counters")

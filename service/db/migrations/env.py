"""Alembic environment: migrations run programmatically by gradhealth.db.engine.migrate."""

from __future__ import annotations

from alembic import context

from gradhealth.db.engine import make_engine
from gradhealth.db.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
if url is None:  # migrate() always sets it; running alembic by hand without it is a usage error
    raise RuntimeError("sqlalchemy.url is not set in the Alembic config")
given = config.attributes.get("connection")
if given is not None:  # migrate() on PostgreSQL: the connection holding the advisory lock
    context.configure(connection=given, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    given.commit()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()

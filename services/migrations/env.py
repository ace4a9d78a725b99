"""Alembic environment: the engine comes from ``services.core.db`` through config attributes."""

from alembic import context
from sqlmodel import SQLModel

import services.schema  # noqa: F401  (registers every table on the metadata)

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line, used to write new revisions
    from services.core.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///alembic-dev.db")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()

"""Alembic environment: the engine comes from ``services.core.db`` through config attributes."""

from alembic import context
from sqlalchemy import MetaData
from sqlmodel import SQLModel

config = context.config
engine = config.attributes.get("engine")
target_metadata: MetaData | None = None  # running migrations reads none of the models
if engine is None:  # plain `alembic` command line, used to write new revisions
    # Autogenerate compares the models with the database, so every table module is loaded here
    # only: the console's own upgrades (db.upgrade) need none of them, 0.2 s of CPU each.
    import services.schema  # noqa: F401  (registers every table on the metadata)
    from services.core.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///alembic-dev.db")
    target_metadata = SQLModel.metadata

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a SQLite table (copy, drop, rename); with foreign keys
        # enforced, SQLite refuses to drop a table that other rows refer to. The pragma changes
        # only outside a transaction (sqlite.org/foreignkeys.html, section 2), so it is set before.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()

"""Alembic environment: runs on the connection `Database.upgrade` hands over, or on -x url=..."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from openveo.store.schema import metadata

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True)["url"]
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()

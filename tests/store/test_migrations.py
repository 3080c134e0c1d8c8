"""The Alembic migrations produce exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from openveo.store.schema import metadata


def test_migrations_match_the_declared_schema(database):
    with database.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


def test_upgrade_twice_is_harmless(database):
    database.upgrade()
    tables = set(inspect(database.engine).get_table_names())
    assert {"api_keys", "ledger", "jobs", "webhook_deliveries", "alembic_version"} <= tables


def test_sqlite_runs_in_wal_mode(tmp_path):
    from openveo.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    db.upgrade()
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()

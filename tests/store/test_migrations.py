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


def test_processes_starting_together_migrate_one_at_a_time(database):
    """API servers and workers run the migrations as they start; on a fresh database at the same
    moment, none of them may fail on a table another one just made."""
    import subprocess
    import sys

    from sqlalchemy import text

    with database.engine.begin() as conn:  # back to an empty database
        metadata.drop_all(conn)
        conn.execute(text("DROP TABLE alembic_version"))
    script = "import sys; from openveo.store.db import Database; Database(sys.argv[1]).upgrade()"
    url = database.engine.url.render_as_string(hide_password=False)
    runs = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE) for _ in range(4)]
    errors = [run.stderr.read().decode() for run in runs]
    assert [run.wait() for run in runs] == [0] * 4, errors
    with database.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []

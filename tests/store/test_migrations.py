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


def test_jobs_stored_before_typed_origins_keep_theirs(database):
    """Migration 0007 turned each job's free-form `extra` into a typed origin: jobs already stored
    still answer in their protocol's terms (operation names, the model asked for, remixes)."""
    import json
    import time

    from alembic import command
    from sqlalchemy import text

    from openveo.core.job import JobOrigin
    from openveo.service import keys
    from openveo.service.jobs import Jobs
    from openveo.store.db import alembic_config

    with database.engine.connect() as conn:
        command.downgrade(alembic_config(conn), "0006")
        conn.commit()
    key, _ = keys.create_key(database, "old", 1.0)
    old = {
        "google": {"base_url": "http://h", "model_path": "models/veo-2", "person_generation": None},
        "openai": {"base_url": "http://h", "model": "sora-2", "remixed_from_video_id": "video_ab12"},
    }
    with database.engine.begin() as conn:
        for job_id, extra in old.items():
            conn.execute(
                text(
                    "INSERT INTO jobs (id, key_id, protocol, model, request, extra, status, cost, billing, "
                    "attempts, progress_step, progress_total, cancel_requested, created_at, updated_at) "
                    "VALUES (:id, :key, 'test', 'tiny-wan2.2', :request, :extra, 'queued', 0, 'reserved', "
                    "0, 0, 0, false, :now, :now)"
                ),
                {
                    "id": job_id,
                    "key": key.id,
                    "request": json.dumps({"prompt": "p", "model": "tiny-wan2.2", "seed": 1}),
                    "extra": json.dumps(extra),
                    "now": time.time(),
                },
            )
    database.upgrade()
    jobs = Jobs(database)
    assert jobs.get("google").origin == JobOrigin(base_url="http://h", route="models/veo-2")
    assert jobs.get("openai").origin == JobOrigin(
        base_url="http://h", requested_model="sora-2", remix_of="ab12"
    )

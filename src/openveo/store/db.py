"""Connections to SQLite (the embedded default) or PostgreSQL, and the migrations that shape them.

SQLite writes are serialised with `BEGIN IMMEDIATE`, so a transaction that reads a balance and then
writes it can never be overtaken by another writer; reads use plain `BEGIN` and run beside writers
thanks to WAL. On PostgreSQL the conditional updates in billing and the queue do the same job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6F70656E76656F  # "openveo": the PostgreSQL advisory lock migrations hold

# The database cannot be reached right now (PostgreSQL restarting, a network blip, SQLite busy past
# its timeout): worth waiting out, unlike a bug or a broken constraint.
OUTAGE = (OperationalError, InterfaceError)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """For an `except` block of a loop that will try again: one line while the database is away
    (expected during a restart), the whole traceback for anything else."""
    exc = sys.exc_info()[1]
    if isinstance(exc, OUTAGE):
        logger.warning(f"{message} (the database is unavailable: %s)", *args, first_line(exc))
    else:
        logger.exception(message, *args)


class Database:
    """One SQLAlchemy engine plus the two kinds of transaction the service needs."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                _private_file(Path(parsed.database))
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _configure_sqlite(self.engine)
        else:
            if parsed.drivername == "postgresql":
                url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                connect_args={"connect_timeout": 10},  # an unreachable host fails fast, not in minutes
            )

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that may write; on SQLite it holds the write lock from its first statement."""
        with self.engine.connect().execution_options(openveo_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def upgrade(self) -> None:
        """Apply Alembic migrations up to the newest (a no-op when already there), one process at a
        time: SQLite's write transaction or a PostgreSQL advisory lock keeps the others waiting."""
        from alembic import command

        with self.engine.connect().execution_options(openveo_write=True) as conn:
            # One transaction around every migration: Alembic, finding it open, commits nothing on its
            # own (on SQLite it would commit after each one, letting another process in between).
            conn.begin()
            if not self.is_sqlite:  # API servers and workers starting together migrate one at a time
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            config = alembic_config(conn)
            command.upgrade(config, "head")
            conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def _private_file(path: Path) -> None:
    """The SQLite file holds keys' hashes and the deployment's signing secret: only its owner reads
    it (SQLite gives its -wal and -shm files the same permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # made by another process a moment ago
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with contextlib.suppress(PermissionError):  # not ours to change: the operator set it up
        os.chmod(path, 0o600)  # one an older version made with the umask's permissions


def alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("openveo_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

"""Shared fixtures. Tiny models are built once per test session into one models dir."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from openveo.config import Settings
from openveo.core.catalog import Catalog
from tests.helpers import required

TINY_PRESETS = ("tiny-wan2.1", "tiny-wan2.2", "tiny-ltx", "tiny-ltx-condition")


class _Crashes(logging.Handler):
    """The API's crash handler's lines (api/errors.py: every unexpected exception, answered 500)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("unhandled error on "):
            self.lines.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_request_crashes(request) -> Iterator[None]:
    """No request anywhere in the suite may crash the API (a 500 from an exception nobody handled),
    whatever it sent: in-process servers log in this process, so each test is checked for it. A test
    that means to produce such a line says so with `crash_expected`."""
    crashes = _Crashes()
    logger = logging.getLogger("openveo.api")
    logger.addHandler(crashes)
    try:
        yield
    finally:
        logger.removeHandler(crashes)
    if crashes.lines and request.node.get_closest_marker("crash_expected") is None:
        pytest.fail(f"a request crashed the API during this test: {crashes.lines}")


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_loras(models_root: Path, tmp_path_factory) -> dict[str, Path]:
    """LoRA files for the tiny models (tests/helpers.py says which is which)."""
    from tests.helpers import make_tiny_loras

    return make_tiny_loras(models_root, tmp_path_factory.mktemp("loras"))


@pytest.fixture(scope="session")
def settings(models_root: Path, tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), models_dir=models_root, device="cpu")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture(scope="session")
def engine(settings: Settings, catalog: Catalog):
    from openveo.engine.engine import Engine
    from openveo.engine.pipelines import quiet_libraries

    quiet_libraries()
    return Engine(settings, catalog)


POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def postgres_database(name: str):
    """Create a fresh PostgreSQL database; yields its URL, drops it afterwards. Skips when PostgreSQL
    is not there, except under CI=true, where it fails."""
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        required(f"PostgreSQL not reachable: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def fresh_database(backend: str) -> Iterator[str | None]:
    """None for SQLite (the server keeps it in its data dir), else a new PostgreSQL database's URL."""
    if backend == "sqlite":
        yield None
        return
    with postgres_database(f"openveo_e2e_{secrets.token_hex(4)}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """A migrated, empty database of each kind the service supports."""
    import secrets

    from openveo.store.db import Database

    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'openveo.db'}")
        db.upgrade()
        yield db
        db.dispose()
        return
    with postgres_database(f"openveo_test_{secrets.token_hex(4)}") as url:
        db = Database(url)
        db.upgrade()
        yield db
        db.dispose()

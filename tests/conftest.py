"""Shared fixtures. Tiny models are built once per test session into one models dir."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from openveo.config import Settings
from openveo.core.catalog import Catalog
from tests.helpers import required

TINY_PRESETS = ("tiny-wan2.1", "tiny-wan2.2", "tiny-ltx")


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


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

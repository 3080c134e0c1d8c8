"""The protocols through the service in this process (tests/inprocess.py): a real HTTP server on a
loopback port, a real database of each kind, and a real worker on the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.inprocess import LocalServer


@pytest.fixture(scope="session")
def local_sqlite(tmp_path_factory, models_root: Path) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("local"), models_root) as running:
        yield running


@pytest.fixture(scope="session")
def local_postgres(tmp_path_factory, models_root: Path) -> Iterator[LocalServer]:
    data_dir = tmp_path_factory.mktemp("local-pg")
    with fresh_database("postgresql") as url, LocalServer(data_dir, models_root, database_url=url) as running:
        yield running


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request) -> LocalServer:
    """The in-process service, once per database."""
    return request.getfixturevalue(f"local_{request.param.replace('postgresql', 'postgres')}")


@pytest.fixture()
def key(server: LocalServer) -> str:
    return server.new_key(credits=10.0)

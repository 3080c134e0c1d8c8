"""End-to-end fixtures. The service tests run against both databases the service supports: SQLite
(the embedded default) and PostgreSQL (scale-out); the protocol tests (Google, OpenAI, the JS
client) exercise wire formats and use the SQLite server only."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_database
from tests.e2e.server import Server
from tests.moderation import ModerationServer

BACKENDS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here starts real processes (servers, workers, a browser, a cluster): the slow set
    (`pytest -m "not slow"` leaves it out)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.slow)


# Webhook receivers in these tests listen on loopback, which a deployment refuses unless its operator
# allows it (tests/api/test_outbound.py shows the refusal).
WEBHOOK_ENV = {"OPENVEO_WEBHOOK_RETRY_S": "0.3", "OPENVEO_OUTBOUND_ALLOW": "127.0.0.1"}


@pytest.fixture(scope="session")
def tiny_models(models_root: Path) -> Path:
    """Build the tiny model once for every server in the session (the servers only load it)."""
    from openveo.core.catalog import Catalog
    from openveo.engine.tiny import ensure_tiny
    from openveo.engine.weights import local_dir

    preset = Catalog().resolve("tiny")
    ensure_tiny(preset.repo, local_dir(preset, models_root))
    return models_root


# The protocol tests' server refuses these (tests/e2e/test_policy.py); no other test's prompt uses them.
BLOCKED_TERM, BLOCKED_PATTERN = "forbidden fruit", r"\bcode\s*red\b"


@pytest.fixture(scope="session")
def moderation() -> Iterator[ModerationServer]:
    server = ModerationServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory, tiny_models: Path, moderation: ModerationServer):
    policy = {
        "OPENVEO_BLOCKED_TERMS": BLOCKED_TERM,
        "OPENVEO_BLOCKED_PATTERNS": json.dumps([BLOCKED_PATTERN]),
        "OPENVEO_MODERATION_URL": moderation.url,
    }
    with Server(tmp_path_factory.mktemp("served"), tiny_models, env={**WEBHOOK_ENV, **policy}) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory, tiny_models: Path):
    with fresh_database("postgresql") as url:
        data_dir = tmp_path_factory.mktemp("served-pg")
        with Server(data_dir, tiny_models, env=WEBHOOK_ENV, database_url=url) as running:
            yield running


@pytest.fixture(scope="session", params=BACKENDS)
def server(request) -> Server:
    """The long-lived server, once per database."""
    return request.getfixturevalue(f"{request.param.replace('postgresql', 'postgres')}_server")


@pytest.fixture()
def key(server: Server) -> str:
    return server.new_key(credits=10.0)


@pytest.fixture(params=BACKENDS)
def make_server(request, tmp_path: Path, tiny_models: Path) -> Iterator[Callable[..., Server]]:
    """Servers of a test's own, on a fresh database of each kind. `same_as=` reuses another's data
    dir and database (a restart)."""
    with contextlib.ExitStack() as stack:

        def make(name: str, *, same_as: Server | None = None, **options) -> Server:
            if same_as is not None:
                return Server(same_as.data_dir, tiny_models, database_url=same_as.database_url, **options)
            url = stack.enter_context(fresh_database(request.param))
            return Server(tmp_path / name, tiny_models, database_url=url, **options)

        yield make

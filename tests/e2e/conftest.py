"""End-to-end fixtures: one long-lived server on the tiny model, shared by the tests that only need a
working service, and keys with known balances."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import Server


@pytest.fixture(scope="session")
def tiny_models(models_root: Path) -> Path:
    """Build the tiny model once for every server in the session (the servers only load it)."""
    from openveo.engine.catalog import Catalog
    from openveo.engine.tiny import ensure_tiny
    from openveo.engine.weights import local_dir

    preset = Catalog().resolve("tiny")
    ensure_tiny(preset.repo, local_dir(preset, models_root))
    return models_root


@pytest.fixture(scope="session")
def server(tmp_path_factory, tiny_models: Path):
    served = Server(tmp_path_factory.mktemp("served"), tiny_models, env={"OPENVEO_WEBHOOK_RETRY_S": "0.3"})
    with served as running:
        yield running


@pytest.fixture()
def key(server: Server) -> str:
    return server.new_key(credits=10.0)

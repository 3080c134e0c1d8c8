"""Shared fixtures. Tiny models are built once per test session into one models dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from openveo.config import Settings
from openveo.engine.catalog import Catalog

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

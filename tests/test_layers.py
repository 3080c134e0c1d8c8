"""The layer rules of docs/architecture.md, as tests.

Each rule is checked two ways: statically, over every import statement in the layer's source files
(function-level imports included), and, where a process is what matters, by importing the layer in
a fresh interpreter and looking at `sys.modules`. Every probe first shows that it can see a violation.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import openveo

PACKAGE = Path(openveo.__file__).parent

TORCH = ("torch", "diffusers", "transformers", "accelerate", "torchao")
SQL = ("sqlalchemy", "alembic", "psycopg", "sqlite3")
WEB = ("fastapi", "starlette", "uvicorn", "httpx")
LAYERS = {name: f"openveo.{name}" for name in ("api", "service", "store", "worker", "engine", "cli", "bench")}

# layer → what it must never import (a module or any module below it)
RULES = {
    "core": (*TORCH, *SQL, *WEB, *LAYERS.values(), "openveo.provenance", "openveo.config"),
    "engine": (*SQL, *WEB, LAYERS["api"], LAYERS["service"], LAYERS["store"], LAYERS["worker"]),
    "provenance": (*TORCH, *SQL, *WEB, LAYERS["api"], LAYERS["service"], LAYERS["store"], LAYERS["engine"]),
    "service": (*TORCH, *WEB[:3], LAYERS["api"], LAYERS["engine"], LAYERS["worker"], LAYERS["cli"]),
    "store": (*TORCH, *WEB, LAYERS["api"], LAYERS["service"], LAYERS["engine"], LAYERS["worker"]),
    "api": (*TORCH, LAYERS["engine"], LAYERS["worker"], LAYERS["cli"]),
    "worker": (*WEB[:3], LAYERS["api"], LAYERS["cli"]),
}


def imports(source: str) -> dict[int, set[str]]:
    """Line → the modules its import statement names, wherever the statement stands."""
    found: dict[int, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found[node.lineno] = {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from openveo import api` imports openveo.api
            found[node.lineno] = {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    """`file:line: module` for each import statement under `folder` that names a forbidden module."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for line, modules in sorted(imports(path.read_text()).items()):
            banned = sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in forbidden))
            if banned:
                found.append(f"{path.relative_to(folder.parent)}:{line}: {banned[0]}")
    return found


@pytest.mark.parametrize("layer", sorted(RULES))
def test_each_layer_imports_only_what_lies_below_it(layer, tmp_path):
    forbidden = RULES[layer]
    # The probe sees a forbidden import at the top of a file and inside a function.
    planted = tmp_path / layer
    planted.mkdir()
    (planted / "top.py").write_text(f"import {forbidden[0]}\n")
    (planted / "inside.py").write_text(f"def f():\n    from {forbidden[-1]} import thing\n")
    assert len(violations(planted, forbidden)) == 2

    assert violations(PACKAGE / layer, forbidden) == []


def test_the_layers_named_in_the_rules_exist():
    for layer in (*RULES, *(name for name in LAYERS)):
        assert (PACKAGE / layer / "__init__.py").is_file(), layer


def _loaded_after(modules: str) -> set[str]:
    code = f"import sys, {modules}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_api_process_starts_without_torch(tmp_path):
    """The API server builds its app (and the service under it) without loading the model stack."""
    code = (
        "import sys; from openveo.config import Settings; from openveo.api.app import create_app; "
        f"create_app(Settings(data_dir={str(tmp_path)!r})); import openveo.serve, openveo.cli; "
        "print(' '.join(sys.modules))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "fastapi" in loaded and "sqlalchemy" in loaded  # the probe sees what the server really loads
    assert not set(TORCH) & loaded


def test_the_engine_loads_no_web_or_sql_code():
    loaded = _loaded_after("openveo.engine.engine, openveo.engine.video, openveo.engine.tiny")
    assert "diffusers" in loaded  # the probe works: it sees what the engine really imports
    assert not {m for m in loaded if m.startswith((*SQL, *WEB[:3], "openveo.api", "openveo.store"))}


def test_the_core_loads_no_torch():
    loaded = _loaded_after(
        "openveo.core.request, openveo.core.catalog, openveo.core.job, openveo.engine.weights"
    )
    assert "pydantic" in loaded  # the probe sees the core's own imports
    assert not {"torch", "diffusers"} & loaded

"""Segmind's published JavaScript example — the real npm `axios` and `form-data` packages in Node —
against the real server on the tiny model (tests/e2e/js/segmind_client.js)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import decode, required

JS_DIR = Path(__file__).parent / "js"
CLIENT = JS_DIR / "segmind_client.js"
PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "npm_config_proxy", "npm_config_https_proxy"}


@pytest.fixture(scope="module")
def node() -> str:
    """The `node` binary, with the JS packages installed (`npm ci --prefix tests/e2e/js`)."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("`node` is not on PATH")
    for package in ("axios", "form-data"):
        if not (JS_DIR / "node_modules" / package / "package.json").is_file():
            missing.append(f"{JS_DIR / 'node_modules' / package} is missing")
    if missing:
        required("; ".join(missing) + " (install with: npm ci --prefix tests/e2e/js --no-audit --no-fund)")
    return node


@pytest.fixture(scope="session")
def server(sqlite_server):
    """Wire-format tests: one database is enough (the service tests cover both)."""
    return sqlite_server


def run_client(node: str, server, key: str, mode: str, out: Path) -> dict:
    # The server is on 127.0.0.1: keep axios from routing it through a proxy from the environment.
    env = {name: value for name, value in os.environ.items() if name.lower() not in PROXY_VARS}
    done = subprocess.run(
        [node, str(CLIENT), server.url, key, mode, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=JS_DIR,
        env=env,
    )
    assert done.returncode == 0, f"node exited {done.returncode}:\n{done.stderr}\n{done.stdout}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{done.stdout}\n{done.stderr}"
    return json.loads(lines[0])


def credits(server, key: str) -> float:
    response = httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key})
    assert response.status_code == 200, response.text
    return response.json()["credits"]


@pytest.mark.parametrize(
    ("mode", "content_type", "fields"),
    [
        (
            "multipart",
            "multipart/form-data; boundary=",
            {"seed": "965002", "duration": "6", "aspect_ratio": "9:16"},
        ),
        (
            "urlencoded",
            "application/x-www-form-urlencoded",
            {"seed": "3", "duration": "5", "aspect_ratio": "16:9"},
        ),
    ],
)
def test_segmind_js_example_gets_a_playable_mp4(node, server, key, tmp_path, mode, content_type, fields):
    out = tmp_path / "out.mp4"
    result = run_client(node, server, key, mode, out)
    assert result["status"] == 200, result
    assert result["sentContentType"].startswith(content_type), result
    assert {name: result["sent"][name] for name in fields} == fields  # what the script really sent
    headers = result["headers"]
    assert headers["content-type"] == "video/mp4"
    assert out.stat().st_size == result["bytes"] > 0

    video = decode(out)
    assert video["frames"].shape[0] > 1
    assert abs(video["duration"] - int(fields["duration"])) <= 1 / video["fps"] + 1e-3, video["duration"]
    if fields["aspect_ratio"] == "9:16":
        assert video["height"] > video["width"]
    else:
        assert video["width"] > video["height"]

    assert headers["x-seed-value"] == fields["seed"]
    remaining = float(headers["x-remaining-credits"])
    assert remaining == credits(server, key)
    assert remaining == pytest.approx(10 - float(headers["x-cost"]))
    assert float(headers["x-cost"]) > 0 and float(headers["x-generation-time"]) > 0
    assert len(headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("mode", "status", "field"),
    [
        ("bad-duration", 422, "duration"),
        ("no-key", 401, "x-api-key"),
    ],
)
def test_segmind_js_example_reads_the_error_body(node, server, key, tmp_path, mode, status, field):
    out = tmp_path / "out.mp4"
    result = run_client(node, server, key, mode, out)
    assert result["status"] == status, result
    assert result["sentContentType"].startswith("multipart/form-data; boundary="), result
    error = result["error"]
    assert isinstance(error, dict) and set(error) == {"error"}, error
    assert isinstance(error["error"], str) and error["error"]
    assert field in error["error"], error
    assert not out.exists()
    assert credits(server, key) == 10  # nothing charged

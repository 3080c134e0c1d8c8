"""Google's Gemini Developer form with the unmodified google-genai 2.34, the last release that speaks
it, from its own virtual environment against the real server process. The Vertex form (google-genai
3.x) and the REST form are tested in-process, in tests/api/test_google.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import decode, required

REPO = Path(__file__).resolve().parents[2]
GENAI234 = Path(os.environ.get("OPENVEO_GENAI234_PYTHON", REPO / ".venv-genai234" / "bin" / "python"))


@pytest.fixture(scope="session")
def server(sqlite_server):
    """Wire-format tests: one database is enough (the service tests cover both)."""
    return sqlite_server


GENAI234_SCRIPT = """
import json, sys, time
from google import genai
from google.genai import errors, types
base, key, out = sys.argv[1:4]
client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base))
op = client.models.generate_videos(model="veo-2.0-generate-001", prompt="a red kite",
    config=types.GenerateVideosConfig(number_of_videos=1, duration_seconds=5, aspect_ratio="16:9"))
name = op.name
while not op.done:
    time.sleep(0.3)
    op = client.operations.get(op)
video = op.response.generated_videos[0].video
data = client.files.download(file=video)
open(out, "wb").write(data)
result = {"name": name, "uri": video.uri, "bytes": len(data)}
try:
    client.models.generate_videos(model="veo-2.0-generate-001", prompt="x",
        config=types.GenerateVideosConfig(duration_seconds=3))
except errors.ClientError as exc:
    result["bad_duration"] = [exc.code, exc.status, exc.message]
print(json.dumps(result))
"""


def test_gemini_form_with_google_genai_2_34(server, key, tmp_path):
    if not GENAI234.exists():
        required(f"google-genai 2.34 venv missing at {GENAI234}; .ci/run makes it")
    out = tmp_path / "gemini.mp4"
    done = subprocess.run(
        [str(GENAI234), "-c", GENAI234_SCRIPT, server.url, key, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["name"].startswith("models/veo-2.0-generate-001/operations/")
    assert result["uri"].startswith(server.url + "/v1beta/files/")  # http://: the SDK's malformed path
    video = decode(out)
    assert video["width"] > video["height"] and abs(video["duration"] - 5) <= 1 / video["fps"] + 1e-3
    assert (
        result["bad_duration"][:2] == [400, "INVALID_ARGUMENT"]
        and "durationSeconds" in result["bad_duration"][2]
    )

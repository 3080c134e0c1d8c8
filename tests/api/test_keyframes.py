"""LTX-Video's keyframes (diffusers' `LTXConditionPipeline`): Veo's `lastFrame` and `video` (extension)
asked for with the unmodified google-genai SDK, routed to the tiny LTX condition model, the way an
operator who serves LTX for them would configure it. Each input reaches the model (changing it
changes the video, the same request gives the same bytes, provenance off)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google import genai
from google.genai import types

from openveo.core.catalog import Capability
from tests.api.test_directing import generated, job_of, psnr
from tests.helpers import credits_of as credits
from tests.helpers import decode, finished_operation, png_bytes
from tests.helpers import vertex_client as vertex
from tests.inprocess import LocalServer

LTX = "tiny-ltx-condition"
PRICE = 0.01  # per second, both tiny models


@pytest.fixture(scope="module")
def keyframes(tmp_path_factory, models_root):
    with LocalServer(
        tmp_path_factory.mktemp("keyframes"),
        models_root,
        capability_models={Capability.LAST_FRAME: LTX, Capability.EXTEND: LTX},
        watermark=False,
        c2pa=False,
    ) as running:
        yield running


def _saved(operation, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.mp4"
    operation.response.generated_videos[0].video.save(str(path))
    return path


def test_google_genai_last_frame_runs_on_ltx_keyframes(keyframes, tmp_path):
    key = keyframes.new_key(credits=10.0)
    client = vertex(keyframes, key)

    def veo(name: str, last: bytes):
        operation = client.models.generate_videos(
            model="veo-3.1-generate-001",
            source=types.GenerateVideosSource(
                prompt="a lighthouse at the shore",
                image=types.Image(image_bytes=png_bytes(320, 180, seed=1), mime_type="image/png"),
            ),
            config=types.GenerateVideosConfig(
                seed=5, duration_seconds=5, last_frame=types.Image(image_bytes=last, mime_type="image/png")
            ),
        )
        operation = finished_operation(client, operation)
        assert keyframes.job_row(job_of(operation)).model == LTX
        return _saved(operation, tmp_path, name)

    at_dusk, at_dawn = veo("dusk", png_bytes(320, 180, seed=2)), veo("dawn", png_bytes(320, 180, seed=3))
    video = decode(at_dusk)
    assert (video["width"], video["height"], len(video["frames"])) == (160, 96, 41)
    assert at_dusk.read_bytes() != at_dawn.read_bytes()  # the last frame reaches the model
    assert veo("dusk-again", png_bytes(320, 180, seed=2)).read_bytes() == at_dusk.read_bytes()
    assert credits(keyframes, key) == pytest.approx(10 - 3 * 5 * PRICE)


def test_google_genai_extends_a_video_on_ltx(keyframes, tmp_path):
    """The answer is the source, then the new seconds conditioned on its last 8k+1 frames."""
    key = keyframes.new_key(credits=10.0)
    client: genai.Client = vertex(keyframes, key)
    first = generated(client, "a train crosses a bridge", 4)
    source = first.response.generated_videos[0].video
    source_path = _saved(first, tmp_path, "source")
    operation = finished_operation(
        client,
        client.models.generate_videos(
            model="veo-2.0-generate-001",
            source=types.GenerateVideosSource(prompt="it enters a tunnel", video=source),
            config=types.GenerateVideosConfig(seed=9, duration_seconds=3),
        ),
    )
    assert keyframes.job_row(job_of(operation)).model == LTX
    before, after = decode(source_path), decode(_saved(operation, tmp_path, "extended"))
    count = len(before["frames"])
    assert len(after["frames"]) == count + 3 * 8
    assert abs(after["duration"] - (before["duration"] + 3)) <= 1 / after["fps"] + 1e-3
    assert psnr(after["frames"][:count], before["frames"]) >= 40  # it starts as the source did
    assert credits(keyframes, key) == pytest.approx(10 - 5 * PRICE - 3 * PRICE)

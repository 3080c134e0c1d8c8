"""First and last frame: a video that starts on one image and ends on another, asked for with the
unmodified google-genai SDK (Veo's `lastFrame`) and the native API, against the service on the tiny
first-and-last-frame model. Veo's model name routes there by what the request needs; what no served
model can do is refused in the protocol's own format with nothing charged."""

from __future__ import annotations

import base64

import httpx
import pytest
from google import genai
from google.genai import errors, types

from openveo.core.catalog import Capability
from tests.helpers import credits_of as credits
from tests.helpers import decode, finished_native_job, finished_operation, png_bytes
from tests.helpers import vertex_client as vertex
from tests.inprocess import LocalServer

FLF2V = "tiny-wan2.1-flf2v"


@pytest.fixture(scope="module")
def routed(tmp_path_factory, models_root):
    """Veo's names run tiny-wan2.2, and tiny FLF2V when a request gives a last frame; provenance off,
    so that the same request gives the same bytes."""
    with LocalServer(
        tmp_path_factory.mktemp("flf"),
        models_root,
        capability_models={Capability.LAST_FRAME: FLF2V},
        watermark=False,
        c2pa=False,
    ) as running:
        yield running


def veo(client: genai.Client, tmp_path, name: str, last: bytes | None, first: bytes = png_bytes(320, 180)):
    operation = client.models.generate_videos(
        model="veo-2.0-generate-001",
        source=types.GenerateVideosSource(
            prompt="a kite rises over a beach", image=types.Image(image_bytes=first, mime_type="image/png")
        ),
        config=types.GenerateVideosConfig(
            seed=11,
            duration_seconds=5,
            last_frame=None if last is None else types.Image(image_bytes=last, mime_type="image/png"),
        ),
    )
    operation = finished_operation(client, operation)
    path = tmp_path / f"{name}.mp4"
    operation.response.generated_videos[0].video.save(str(path))
    return path, operation.name.rsplit("/", 1)[-1]


def test_google_genai_last_frame_routes_to_the_first_and_last_frame_model(routed, tmp_path):
    key = routed.new_key(credits=10.0)
    client = vertex(routed, key)
    dawn, dusk = png_bytes(320, 180, seed=1), png_bytes(320, 180, seed=2)
    ending_at_dawn, job = veo(client, tmp_path, "dawn", dawn)
    assert routed.job_row(job).model == FLF2V  # veo-2 with a last frame: the configured model
    video = decode(ending_at_dawn)
    assert len(video["frames"]) == 41 and abs(video["duration"] - 5) <= 1 / video["fps"] + 1e-3
    ending_at_dusk, _ = veo(client, tmp_path, "dusk", dusk)
    again, _ = veo(client, tmp_path, "dawn-again", dawn)
    assert ending_at_dusk.read_bytes() != ending_at_dawn.read_bytes()  # the last frame reaches the model
    assert again.read_bytes() == ending_at_dawn.read_bytes()  # and nothing else changed
    _, job = veo(client, tmp_path, "first-only", None)
    assert routed.job_row(job).model == "tiny-wan2.2"  # without it, veo-2's own model
    assert credits(routed, key) == pytest.approx(10 - 3 * 5 * 0.01 - 5 * 0.01)


def test_native_api_takes_a_last_image(routed, tmp_path):
    key = routed.new_key(credits=10.0)
    first = base64.b64encode(png_bytes(200, 120)).decode()
    last = "data:image/png;base64," + base64.b64encode(png_bytes(200, 120, seed=3)).decode()
    body = {"prompt": "a door opens", "model": FLF2V, "image": first, "last_image": last, "seed": 2}
    created = httpx.post(f"{routed.url}/v1/jobs", json=body, headers={"x-api-key": key})
    assert created.status_code == 201, created.text
    job = finished_native_job(routed, key, created.json()["id"])
    assert "last_image" not in job["request"] and job["model"] == FLF2V
    path = tmp_path / "door.mp4"
    path.write_bytes(httpx.get(job["videos"][0]["url"]).content)
    assert decode(path)["width"] == 160


def _google_refusal(server, key: str, instance: dict) -> str:
    url = f"{server.url}/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning"
    response = httpx.post(url, json={"instances": [instance]}, headers={"x-goog-api-key": key})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    return error["message"]


def test_last_frames_nothing_can_serve_are_refused_and_not_charged(server, routed, key):
    """`server` routes nothing by capability: its veo-2 model (tiny-wan2.2) cannot end on a frame."""
    image = {"bytesBase64Encoded": base64.b64encode(png_bytes()).decode(), "mimeType": "image/png"}
    message = _google_refusal(server, key, {"prompt": "x", "image": image, "lastFrame": image})
    assert "lastFrame" in message and "tiny-wan2.2" in message and FLF2V in message
    message = _google_refusal(server, key, {"prompt": "x", "lastFrame": image})
    assert "lastFrame needs a first frame" in message
    broken = {"bytesBase64Encoded": base64.b64encode(b"not a picture").decode(), "mimeType": "image/png"}
    message = _google_refusal(server, key, {"prompt": "x", "image": image, "lastFrame": broken})
    assert "lastFrame" in message and "readable image" in message
    message = _google_refusal(
        server, key, {"prompt": "x", "image": image, "lastFrame": {"gcsUri": "gs://b/x"}}
    )
    assert "lastFrame.gcsUri" in message
    assert credits(server, key) == 10
    # the model named directly, without the last frame it needs: native API's own error format
    native = httpx.post(
        f"{routed.url}/v1/jobs",
        json={"prompt": "x", "model": FLF2V, "image": image["bytesBase64Encoded"]},
        headers={"x-api-key": (routed_key := routed.new_key(credits=10.0))},
    )
    assert native.status_code == 422 and "last_image is required" in native.text, native.text
    client = vertex(routed, routed_key)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_videos(
            model="veo-2.0-generate-001",
            prompt="a last frame alone",
            config=types.GenerateVideosConfig(
                last_frame=types.Image(image_bytes=png_bytes(), mime_type="image/png")
            ),
        )
    assert caught.value.code == 400 and "lastFrame" in caught.value.message
    assert credits(routed, routed_key) == 10


def test_segmind_veo_3_1_takes_a_last_frame_and_a_resolution(routed, server, key, tmp_path):
    """Segmind's veo-3.1 slug with its published fields, through the unmodified `segmind` SDK: a
    last_frame routes to the first-and-last-frame model (Segmind's default 8 s, which the tiny twin
    makes), resolution 720p is the exact size, and generate_audio true is refused, not charged."""
    from segmind import SegmindClient
    from segmind.exceptions import SegmindError

    routed_key = routed.new_key(credits=10.0)
    sdk = SegmindClient(api_key=routed_key, base_url=f"{routed.url}/v1", timeout=120)
    first, last = (base64.b64encode(png_bytes(200, 120, seed=s)).decode() for s in (5, 6))
    common = {"prompt": "a door opens", "image": first, "seed": 4, "resolution": "720p"}
    response = sdk.run_sync("veo-3.1", **common, last_frame=last, generate_audio=False)
    path = tmp_path / "door.mp4"
    path.write_bytes(response.content)
    video = decode(path)
    assert (video["width"], video["height"], len(video["frames"])) == (1280, 720, 65)
    assert routed.job_row(response.headers["x-request-id"]).model == FLF2V
    with pytest.raises(SegmindError) as silent:
        sdk.run_sync("veo-3.1", **common, last_frame=last, generate_audio=True)
    assert silent.value.status == 422 and "generate_audio" in silent.value.detail
    with pytest.raises(SegmindError) as big:
        sdk.run_sync("veo-3.1", **{**common, "resolution": "4k"}, last_frame=last)
    assert big.value.status == 422 and "720p, 1080p" in big.value.detail
    odd = httpx.post(
        f"{routed.url}/v1/veo-3.1",
        json={"prompt": "x", "resolution": "720p", "aspect_ratio": ["16:9"]},
        headers={"x-api-key": routed_key},
    )
    assert odd.status_code == 422 and "aspect_ratio" in odd.text, odd.text
    assert credits(routed, routed_key) == pytest.approx(10 - 8 * 0.01)
    # without capability routing, veo-3.1 runs the served model for Segmind's default 8 s
    plain = SegmindClient(api_key=key, base_url=f"{server.url}/v1", timeout=120)
    (tmp_path / "plain.mp4").write_bytes(plain.run_sync("veo-3.1", prompt="a gull", seed=1).content)
    assert len(decode(tmp_path / "plain.mp4")["frames"]) == 65  # 8 s at 8 fps

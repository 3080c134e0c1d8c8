"""Reference images, extension and masked edits, asked for with the unmodified google-genai SDK (Veo's
`referenceImages`, `GenerateVideosSource.video` and `mask`) and Gemini's REST form, against the service on
the tiny Wan VACE model, where Veo's model name routes such requests. Each input reaches the model
(changing it changes the video, going back gives the same bytes, provenance off); what cannot be
served is refused in Google's format with nothing charged."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from google import genai
from google.genai import errors, types

from openveo.core.catalog import Capability
from openveo.engine.video import write_mp4
from tests.helpers import credits_of as credits
from tests.helpers import decode, finished_native_job, finished_operation, mask_png, png_bytes
from tests.helpers import vertex_client as vertex
from tests.inprocess import LocalServer

VACE = "tiny-wan2.1-vace"
PRICE = 0.01  # per second, both tiny models


@pytest.fixture(scope="module")
def directing(tmp_path_factory, models_root):
    """Veo's names run tiny-wan2.2, and tiny VACE for references and extensions; provenance off, so
    that the same request gives the same bytes."""
    with LocalServer(
        tmp_path_factory.mktemp("directing"),
        models_root,
        capability_models={
            Capability.REFERENCE_IMAGES: VACE,
            Capability.EXTEND: VACE,
            Capability.MASK: VACE,
        },
        watermark=False,
        c2pa=False,
    ) as running:
        yield running


def job_of(operation) -> str:
    return operation.name.rsplit("/", 1)[-1]


def generated(client: genai.Client, prompt: str, seed: int, model: str = "veo-2.0-generate-001"):
    """A finished 5 s text-to-video operation: a video of this server's to extend or edit."""
    config = types.GenerateVideosConfig(seed=seed, duration_seconds=5)
    return finished_operation(
        client, client.models.generate_videos(model=model, prompt=prompt, config=config)
    )


def with_references(client: genai.Client, images: list[bytes], tmp_path: Path, name: str):
    operation = client.models.generate_videos(
        model="veo-2.0-generate-001",
        prompt="a red fox walks through a wheat field",
        config=types.GenerateVideosConfig(
            seed=5,
            duration_seconds=5,
            reference_images=[
                types.VideoGenerationReferenceImage(
                    image=types.Image(image_bytes=image, mime_type="image/png"),
                    reference_type=types.VideoGenerationReferenceType.ASSET,
                )
                for image in images
            ],
        ),
    )
    operation = finished_operation(client, operation)
    path = tmp_path / f"{name}.mp4"
    operation.response.generated_videos[0].video.save(str(path))
    return path, job_of(operation)


def test_google_genai_reference_images_route_to_vace_and_reach_it(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    client = vertex(directing, key)
    fox, hat, scarf = (png_bytes(200, 200, seed=seed) for seed in (21, 22, 23))
    with_fox, job = with_references(client, [fox], tmp_path, "fox")
    assert directing.job_row(job).model == VACE
    video = decode(with_fox)
    assert len(video["frames"]) == 41 and video["codec"] == "h264"
    with_hat, _ = with_references(client, [hat], tmp_path, "hat")
    with_fox_again, _ = with_references(client, [fox], tmp_path, "fox-again")
    with_three, _ = with_references(client, [fox, hat, scarf], tmp_path, "three")
    assert with_hat.read_bytes() != with_fox.read_bytes()  # the reference reaches the model
    assert with_fox_again.read_bytes() == with_fox.read_bytes()  # and nothing else changed
    assert with_three.read_bytes() not in (with_fox.read_bytes(), with_hat.read_bytes())
    assert credits(directing, key) == pytest.approx(10 - 4 * 5 * PRICE)


def test_native_api_vace_without_references_differs_from_with_them(directing):
    """Named directly, the VACE model makes video from text alone; a reference changes it."""
    key = directing.new_key(credits=10.0)
    made = {}
    for name, references in (("none", None), ("one", [png_bytes(120, 90, seed=4)])):
        body = {"prompt": "a lighthouse at night", "model": VACE, "seed": 8}
        if references:
            body["reference_images"] = [base64.b64encode(image).decode() for image in references]
        created = httpx.post(f"{directing.url}/v1/jobs", json=body, headers={"x-api-key": key})
        assert created.status_code == 201, created.text
        made[name] = _native_video(directing, key, created.json()["id"])
    assert made["none"] != made["one"]


def _native_video(server, key: str, job_id: str) -> bytes:
    return httpx.get(finished_native_job(server, key, job_id)["videos"][0]["url"]).content


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255.0**2 / error)


def test_google_genai_extends_a_video_it_returned(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    client = vertex(directing, key)
    first = generated(
        client, "waves roll onto a beach", 3, "veo-3.1-generate-001"
    )  # Veo 3.x ids: aliases too
    assert directing.job_row(job_of(first)).model == "tiny-wan2.2"
    source = first.response.generated_videos[0].video
    source_path = tmp_path / "source.mp4"
    source.save(str(source_path))

    def extend(video: types.Video, name: str) -> Path:
        operation = finished_operation(
            client,
            client.models.generate_videos(
                model="veo-2.0-generate-001",
                source=types.GenerateVideosSource(prompt="the tide goes out", video=video),
                config=types.GenerateVideosConfig(seed=9, duration_seconds=3),
            ),
        )
        assert directing.job_row(job_of(operation)).model == VACE
        path = tmp_path / f"{name}.mp4"
        operation.response.generated_videos[0].video.save(str(path))
        return path

    extended = extend(source, "extended")
    before, after = decode(source_path), decode(extended)
    count = len(before["frames"])
    assert len(after["frames"]) == count + 3 * 8  # the source, then 3 s at 8 fps
    assert abs(after["duration"] - (before["duration"] + 3)) <= 1 / after["fps"] + 1e-3
    assert (after["width"], after["height"], after["fps"]) == (before["width"], before["height"], 8)
    assert psnr(after["frames"][:count], before["frames"]) >= 40  # it starts as the source did

    # a different source changes what is added; the same one again gives the same video
    other = types.Video(video_bytes=_other_video(tmp_path), mime_type="video/mp4")
    from_other = extend(other, "from-other")
    again = extend(source, "again")
    assert again.read_bytes() == extended.read_bytes()
    added = decode(from_other)["frames"][-24:]
    assert psnr(added, after["frames"][-24:]) < 30  # the new seconds continue their own source
    assert credits(directing, key) == pytest.approx(10 - 5 * PRICE - 3 * 3 * PRICE)


def _other_video(tmp_path: Path, seconds: float = 2, fps: int = 8) -> bytes:
    """A video that this server did not make, at the tiny model's size and frame rate."""
    rng = np.random.default_rng(7)
    frames = np.repeat(rng.integers(0, 255, (1, 96, 160, 3), dtype=np.uint8), round(seconds * fps), axis=0)
    return write_mp4(frames, tmp_path / "other.mp4", fps).read_bytes()


GEMINI = "/v1beta/models/veo-2.0-generate-001"


def _gemini_video(server, key: str, instance: dict, parameters: dict | None = None) -> tuple[str, bytes]:
    started = httpx.post(
        f"{server.url}{GEMINI}:predictLongRunning",
        json={"instances": [instance], "parameters": parameters or {}},
        headers={"x-goog-api-key": key},
    )
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + 120
    while not (operation := httpx.get(f"{server.url}/v1beta/{started.json()['name']}", headers={
        "x-goog-api-key": key
    }).json())["done"]:  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.3)
    uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
    return uri, httpx.get(uri, headers={"x-goog-api-key": key}).content


def test_gemini_extends_a_video_by_the_uri_it_gave_and_only_for_its_key(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    uri, source = _gemini_video(directing, key, {"prompt": "a paper boat"}, {"durationSeconds": 5})
    _, extended = _gemini_video(directing, key, {"prompt": "it sails on", "video": {"uri": uri}})
    (tmp_path / "source.mp4").write_bytes(source)
    (tmp_path / "extended.mp4").write_bytes(extended)
    before, after = decode(tmp_path / "source.mp4"), decode(tmp_path / "extended.mp4")
    assert len(after["frames"]) == len(before["frames"]) + 4 * 8  # without durationSeconds: the most, 4 s
    spent = credits(directing, key)
    assert spent == pytest.approx(10 - 5 * PRICE - 4 * PRICE)

    stranger = directing.new_key(credits=10.0)
    refused = httpx.post(
        f"{directing.url}{GEMINI}:predictLongRunning",
        json={"instances": [{"prompt": "mine now", "video": {"uri": uri}}]},
        headers={"x-goog-api-key": stranger},
    )
    assert refused.status_code == 404 and refused.json()["error"]["status"] == "NOT_FOUND", refused.text
    assert "instances[0].video" in refused.json()["error"]["message"]
    assert credits(directing, stranger) == 10


def _refusal(server, key: str, instance: dict, parameters: dict | None = None) -> str:
    url = f"{server.url}/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning"
    body = {"instances": [instance], "parameters": parameters or {}}
    response = httpx.post(url, json=body, headers={"x-goog-api-key": key})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    return error["message"]


def _inline(data: bytes, mime: str = "image/png") -> dict:
    return {"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": mime}


def test_references_and_sources_that_cannot_be_served_are_refused_and_not_charged(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    asset = {"image": _inline(png_bytes()), "referenceType": "ASSET"}
    message = _refusal(directing, key, {"prompt": "x", "referenceImages": [asset] * 4})
    assert "referenceImages may hold at most 3" in message
    style = {"image": _inline(png_bytes()), "referenceType": "STYLE"}
    message = _refusal(directing, key, {"prompt": "x", "referenceImages": [asset, style]})
    assert "referenceImages[1]" in message and "STYLE reference" in message and "asset" in message
    message = _refusal(directing, key, {"prompt": "x", "video": _inline(b"not a video at all", "video/mp4")})
    assert "instances[0].video is not a readable video" in message
    too_long = np.zeros((31 * 8, 96, 160, 3), dtype=np.uint8)
    long_video = write_mp4(too_long, tmp_path / "long.mp4", 8).read_bytes()
    message = _refusal(directing, key, {"prompt": "x", "video": _inline(long_video, "video/mp4")})
    assert "must be 1 to 30 seconds long; got 31.0" in message
    fast = write_mp4(np.zeros((48, 96, 160, 3), dtype=np.uint8), tmp_path / "fast.mp4", 24).read_bytes()
    message = _refusal(directing, key, {"prompt": "x", "video": _inline(fast, "video/mp4")})
    assert "must be at 8 fps" in message and "got 24 fps" in message
    fine = _other_video(tmp_path)
    message = _refusal(
        directing, key, {"prompt": "x", "video": _inline(fine, "video/mp4")}, {"durationSeconds": 8}
    )
    assert "durationSeconds must be from 1 to 4 seconds for an extension" in message
    message = _refusal(
        directing, key, {"prompt": "x", "image": _inline(png_bytes()), "video": _inline(fine, "video/mp4")}
    )
    assert "instances[0].image cannot be sent with a video to extend" in message
    message = _refusal(
        directing, key, {"prompt": "x", "mask": {**_inline(png_bytes()), "maskMode": "INSERT"}}
    )
    assert "instances[0].mask edits a video: send the video to edit as well" in message
    assert credits(directing, key) == 10


def test_references_nothing_served_can_take_are_refused_naming_what_could(server, key):
    """`server` routes nothing by capability: its veo-2 model (tiny-wan2.2) takes no references."""
    asset = {"image": _inline(png_bytes()), "referenceType": "asset"}
    message = _refusal(server, key, {"prompt": "x", "referenceImages": [asset]})
    assert "referenceImages is not supported by tiny-wan2.2" in message and VACE in message
    client = vertex(server, key)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_videos(
            model="veo-2.0-generate-001",
            source=types.GenerateVideosSource(
                prompt="more of it", video=types.Video(video_bytes=b"\x00" * 64, mime_type="video/mp4")
            ),
        )
    assert caught.value.code == 400 and "instances[0].video" in caught.value.message
    assert credits(server, key) == 10


def test_google_genai_edits_a_video_inside_its_mask(directing, tmp_path):
    """`mask` with `video` edits the video (Vertex: a mask with a video edits, without one extends):
    insert remakes the white region and leaves the rest as the source; another mask, another video;
    Veo's tracking REMOVE is refused, nothing charged."""
    key = directing.new_key(credits=10.0)
    client = vertex(directing, key)
    first = generated(client, "a quiet harbour at dawn", 4)
    source = first.response.generated_videos[0].video
    source_path = tmp_path / "source.mp4"
    source.save(str(source_path))

    def edit(mask: bytes, mode: types.VideoGenerationMaskMode, name: str) -> Path:
        operation = finished_operation(
            client,
            client.models.generate_videos(
                model="veo-2.0-generate-preview",
                source=types.GenerateVideosSource(prompt="a red sailboat", video=source),
                config=types.GenerateVideosConfig(
                    seed=2,
                    mask=types.VideoGenerationMask(
                        image=types.Image(image_bytes=mask, mime_type="image/png"), mask_mode=mode
                    ),
                ),
            ),
        )
        assert directing.job_row(job_of(operation)).model == VACE
        path = tmp_path / f"{name}.mp4"
        operation.response.generated_videos[0].video.save(str(path))
        return path

    insert = types.VideoGenerationMaskMode.INSERT
    left = edit(mask_png(160, 96, (0, 0, 64, 96)), insert, "left")
    before, after = decode(source_path), decode(left)
    assert after["frames"].shape == before["frames"].shape and after["fps"] == 8
    assert psnr(after["frames"][:, :, 80:], before["frames"][:, :, 80:]) >= 40  # kept as it was
    assert psnr(after["frames"][:, :, :56], before["frames"][:, :, :56]) < 30  # remade
    right = edit(mask_png(160, 96, (96, 0, 160, 96)), insert, "right")
    assert psnr(decode(right)["frames"][:, :, :80], before["frames"][:, :, :80]) >= 40
    assert credits(directing, key) == pytest.approx(10 - 5 * PRICE - 2 * 5 * PRICE)  # by the source's length

    spent = credits(directing, key)
    with pytest.raises(errors.ClientError) as caught:
        edit(mask_png(160, 96, (0, 0, 64, 96)), types.VideoGenerationMaskMode.REMOVE, "tracked")
    assert caught.value.code == 400 and "instances[0].mask.maskMode" in caught.value.message
    assert "tracks an object" in caught.value.message and "remove_static" in caught.value.message
    assert credits(directing, key) == spent


def test_native_api_edits_a_video_of_its_own_by_id(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    made = httpx.post(
        f"{directing.url}/v1/jobs",
        json={"prompt": "a market street", "model": VACE, "seed": 3},
        headers={"x-api-key": key},
    )
    assert made.status_code == 201, made.text
    source = _native_video(directing, key, made.json()["id"])
    body = {
        "prompt": "the same street, empty",
        "source_video": {"id": made.json()["id"]},
        "mask": base64.b64encode(mask_png(160, 96, (40, 20, 120, 76))).decode(),
        "mask_mode": "remove_static",
        "model": VACE,
    }
    edited = httpx.post(f"{directing.url}/v1/jobs", json=body, headers={"x-api-key": key})
    assert edited.status_code == 201, edited.text
    (tmp_path / "source.mp4").write_bytes(source)
    (tmp_path / "edited.mp4").write_bytes(_native_video(directing, key, edited.json()["id"]))
    before, after = decode(tmp_path / "source.mp4"), decode(tmp_path / "edited.mp4")
    assert after["frames"].shape == before["frames"].shape
    assert psnr(after["frames"][:, :10], before["frames"][:, :10]) >= 40
    assert psnr(after["frames"][:, 30:66, 50:110], before["frames"][:, 30:66, 50:110]) < 30
    refused = httpx.post(
        f"{directing.url}/v1/jobs", json={**body, "mask_mode": "remove"}, headers={"x-api-key": key}
    )
    assert refused.status_code == 422 and "mask_mode" in refused.text, refused.text
    assert credits(directing, key) == pytest.approx(10 - 2 * 5 * PRICE)

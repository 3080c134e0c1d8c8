"""OpenAI's Videos API with the unmodified openai SDK (code written for Sora, pointed here)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.helpers import decode, png_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK warns that Sora's API closed


@pytest.fixture(scope="session")
def server(local_sqlite):
    """Wire-format tests: one database is enough (the service tests cover both)."""
    return local_sqlite


def client(server, key: str) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key=key, timeout=120)


def test_create_and_poll_then_download_every_variant(server, key, tmp_path):
    sdk = client(server, key)
    video = sdk.videos.create_and_poll(prompt="a paper plane", model="sora-2", seconds="8", size="1280x720")
    assert video.status == "completed" and video.progress == 100 and video.error is None
    assert (video.model, video.seconds, video.size) == ("sora-2", "8", "1280x720")
    assert video.completed_at >= video.created_at and video.expires_at > video.completed_at

    path = tmp_path / "sora.mp4"
    sdk.videos.download_content(video.id).write_to_file(path)
    decoded = decode(path)
    assert (decoded["width"], decoded["height"]) == (1280, 720)
    assert abs(decoded["duration"] - 8) <= 1 / decoded["fps"] + 1e-3
    for variant in ("thumbnail", "spritesheet"):
        image_path = tmp_path / f"{variant}.jpg"
        sdk.videos.download_content(video.id, variant=variant).write_to_file(image_path)
        with Image.open(image_path) as image:
            assert image.format == "JPEG"
            if variant == "thumbnail":
                assert image.size == (1280, 720)
            else:
                assert image.size == (5 * 256, 2 * 144)  # 10 frames in a 5x2 grid


def test_progress_is_reported_while_running(server, key):
    sdk = client(server, key)
    created = sdk.videos.create(prompt="a slow sunrise", seconds="8", size="1280x720")
    assert created.status == "queued" and created.progress == 0
    seen = set()
    while (current := sdk.videos.retrieve(created.id)).status in ("queued", "in_progress"):
        seen.add(current.progress)
        time.sleep(0.05)  # leave the two CPU cores to the worker
    assert current.status == "completed"
    assert all(0 <= p <= 100 for p in seen)


def test_list_pages_remix_and_delete(server, tmp_path):
    key = server.new_key(credits=5)
    sdk = client(server, key)
    first = sdk.videos.create_and_poll(
        prompt="a fox",
        seconds="8",
        size="720x1280",
        input_reference=("first.png", png_bytes(96, 160), "image/png"),
    )
    assert first.status == "completed" and first.size == "720x1280"
    remix = sdk.videos.remix(first.id, prompt="a fox in the snow")
    assert remix.remixed_from_video_id == first.id and remix.seconds == "8" and remix.size == "720x1280"
    remix = sdk.videos.retrieve(remix.id)

    headers = {"x-api-key": key}
    source_job = httpx.get(f"{server.url}/v1/jobs/{first.id.removeprefix('video_')}", headers=headers).json()
    remix_job = httpx.get(f"{server.url}/v1/jobs/{remix.id.removeprefix('video_')}", headers=headers).json()
    assert remix_job["request"]["seed"] == source_job["request"]["seed"]  # same parameters and seed
    assert remix_job["request"]["has_image"] and remix_job["request"]["prompt"] == "a fox in the snow"

    third = sdk.videos.create(prompt="a hare", seconds="8", size="1280x720")
    newest_first = [v.id for v in sdk.videos.list(limit=1)]  # auto-pagination, one per page
    assert newest_first == [third.id, remix.id, first.id]
    assert [v.id for v in sdk.videos.list(limit=2, order="asc")] == newest_first[::-1]

    files = server.data_dir / "results" / "jobs" / first.id.removeprefix("video_")
    assert files.is_dir()
    deleted = sdk.videos.delete(first.id)
    assert deleted.deleted and deleted.id == first.id
    assert not files.exists()
    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve(first.id)
    sdk.videos.delete(third.id)  # unfinished: canceled and refunded
    assert [v.id for v in sdk.videos.list()] == [remix.id]


def test_errors_raise_the_sdks_own_exceptions_without_retries(server, key):
    sdk = client(server, key)
    with pytest.raises(openai.BadRequestError) as twelve_seconds:
        sdk.videos.create(prompt="x", seconds="12")
    error = twelve_seconds.value
    assert error.status_code == 400 and error.param == "seconds" and error.code == "invalid_value"
    assert "'4', '8'" in error.message  # says what this model can do
    assert error.response.headers["x-should-retry"] == "false"

    with pytest.raises(openai.BadRequestError) as size:
        sdk.videos.create(prompt="x", size="640x480")
    assert size.value.param == "size" and "1280x720" in size.value.message

    with pytest.raises(openai.AuthenticationError) as bad_key:
        client(server, "ov-nope").videos.list()
    assert bad_key.value.status_code == 401 and bad_key.value.code == "invalid_api_key"

    poor = server.new_key(credits=0.05)  # an 8 s tiny video costs 0.08
    with pytest.raises(openai.RateLimitError) as no_credits:
        client(server, poor).videos.create(prompt="x", seconds="8")
    assert no_credits.value.code == "insufficient_quota"
    assert no_credits.value.response.headers["x-should-retry"] == "false"  # the SDK does not retry

    with pytest.raises(openai.NotFoundError):
        sdk.videos.retrieve("video_" + "0" * 32)
    credits = httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()
    assert credits == {"credits": 10}

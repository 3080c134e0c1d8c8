"""Google's Veo API with the unmodified google-genai SDK 3.x in the Vertex form, and the Gemini
Developer form over REST (google-genai 2.34 speaks it in tests/e2e/test_google.py)."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.helpers import decode, png_bytes


@pytest.fixture(scope="session")
def server(local_sqlite):
    """Wire-format tests: one database is enough (the service tests cover both)."""
    return local_sqlite


def vertex(server, key: str, **options) -> genai.Client:
    return genai.Client(
        enterprise=True, api_key=key, http_options=types.HttpOptions(base_url=server.url), **options
    )


def wait(client: genai.Client, operation, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not operation.done:
        assert time.monotonic() < deadline, "the operation never finished"
        time.sleep(0.3)
        operation = client.operations.get(operation)
    return operation


def credits(server, key: str) -> float:
    return httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()["credits"]


def test_vertex_two_portrait_videos(server, key, tmp_path):
    client = vertex(server, key)
    operation = client.models.generate_videos(
        model="veo-2.0-generate-001",
        prompt="a paper boat on a stream",
        config=types.GenerateVideosConfig(
            number_of_videos=2, duration_seconds=5, aspect_ratio="9:16", seed=3
        ),
    )
    assert operation.name.startswith("publishers/google/models/veo-2.0-generate-001/operations/")
    operation = wait(client, operation)
    assert operation.error is None
    videos = operation.response.generated_videos
    assert len(videos) == 2
    paths = []
    for index, generated in enumerate(videos):
        path = tmp_path / f"veo-{index}.mp4"
        generated.video.save(str(path))
        video = decode(path)
        assert video["height"] > video["width"]
        assert abs(video["duration"] - 5) <= 1 / video["fps"] + 1e-3
        paths.append(path)
    assert paths[0].read_bytes() != paths[1].read_bytes()  # seeds 3 and 4
    assert credits(server, key) == pytest.approx(10 - 2 * 5 * 0.01)  # each video is charged


def test_vertex_720p_with_a_project_path_and_an_image(server, key, tmp_path):
    client = vertex(server, key, project="my-project", location="us-central1")
    operation = client.models.generate_videos(
        model="veo-2.0-generate-001",
        prompt="the picture comes alive",
        image=types.Image(image_bytes=png_bytes(320, 180), mime_type="image/png"),
        config=types.GenerateVideosConfig(
            duration_seconds=6, aspect_ratio="16:9", resolution="720p", person_generation="allow_adult"
        ),
    )
    assert operation.name.startswith("projects/my-project/locations/us-central1/publishers/google/models/")
    operation = wait(client, operation)
    path = tmp_path / "i2v.mp4"
    operation.response.generated_videos[0].video.save(str(path))
    video = decode(path)
    assert (video["width"], video["height"]) == (1280, 720)
    assert abs(video["duration"] - 6) <= 1 / video["fps"] + 1e-3


def test_vertex_errors_raise_the_sdks_own_exceptions(server, key):
    client = vertex(server, key)
    with pytest.raises(errors.ClientError) as bad_duration:
        client.models.generate_videos(
            model="veo-2.0-generate-001", prompt="x", config=types.GenerateVideosConfig(duration_seconds=9)
        )
    assert (bad_duration.value.code, bad_duration.value.status) == (400, "INVALID_ARGUMENT")
    assert "durationSeconds" in bad_duration.value.message and "4, 5, 6, 7, 8" in bad_duration.value.message

    with pytest.raises(errors.ClientError) as storage:
        client.models.generate_videos(
            model="veo-2.0-generate-001",
            prompt="x",
            config=types.GenerateVideosConfig(output_gcs_uri="gs://b/x"),
        )
    assert storage.value.code == 400 and "storageUri" in storage.value.message

    stranger = vertex(server, "ov-not-a-key")
    with pytest.raises(errors.ClientError) as bad_key:
        stranger.models.generate_videos(model="veo-2.0-generate-001", prompt="x")
    assert (bad_key.value.code, bad_key.value.status) == (401, "UNAUTHENTICATED")

    poor = vertex(server, server.new_key(credits=0.01))
    with pytest.raises(errors.ClientError) as no_credits:
        poor.models.generate_videos(model="veo-2.0-generate-001", prompt="x")
    assert (no_credits.value.code, no_credits.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "insufficient credits" in no_credits.value.message
    assert credits(server, key) == 10


def test_gemini_form_over_rest_with_a_query_key(server, key):
    body = {"instances": [{"prompt": "a lantern"}], "parameters": {"durationSeconds": 5, "seed": 7}}
    started = httpx.post(f"{server.url}/v1beta/models/veo-2:predictLongRunning?key={key}", json=body)
    assert started.status_code == 200, started.text
    name = started.json()["name"]
    assert name.startswith("models/veo-2/operations/")
    deadline = time.monotonic() + 120
    while not (operation := httpx.get(f"{server.url}/v1beta/{name}", params={"key": key}).json()).get("done"):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    samples = operation["response"]["generateVideoResponse"]["generatedSamples"]
    download = httpx.get(samples[0]["video"]["uri"], headers={"x-goog-api-key": key})
    assert download.status_code == 200 and download.content[4:8] == b"ftyp"
    missing = httpx.get(f"{server.url}/v1beta/{name}x", params={"key": key})
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_google_rejects_what_veo_2_cannot_do(server, key):
    url = f"{server.url}/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning"
    headers = {"x-goog-api-key": key}
    cases = [
        ({"resolution": "1080p"}, "resolution"),
        ({"fps": 30}, "fps"),
        ({"seed": 2**32}, "seed"),
        ({"personGeneration": "everyone"}, "personGeneration"),
        ({"generateAudio": True}, "generateAudio"),
        ({"sampleCount": 5}, "sampleCount"),
        ({"aspectRatio": "4:3"}, "aspectRatio"),
        ({"frobnicate": 1}, "frobnicate"),
    ]
    for parameters, word in cases:
        response = httpx.post(
            url, json={"instances": [{"prompt": "x"}], "parameters": parameters}, headers=headers
        )
        assert response.status_code == 400, (parameters, response.text)
        error = response.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT" and word in error["message"], error
    image = {"bytesBase64Encoded": base64.b64encode(b"not an image").decode(), "mimeType": "image/png"}
    response = httpx.post(url, json={"instances": [{"prompt": "x", "image": image}]}, headers=headers)
    assert response.status_code == 400 and "image" in response.json()["error"]["message"]
    assert credits(server, key) == 10

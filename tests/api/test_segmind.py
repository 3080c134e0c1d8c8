"""The unmodified `segmind` SDK and plain HTTP against the service on the tiny model."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from segmind import SegmindClient
from segmind.exceptions import SegmindError

from tests.helpers import decode, png_bytes

PRICE_PER_SECOND = 0.01  # the tiny preset's price


def client(server, key: str) -> SegmindClient:
    return SegmindClient(api_key=key, base_url=f"{server.url}/v1", timeout=120)


def credits(server, key: str) -> float:
    return httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()["credits"]


def test_run_sync_returns_a_playable_mp4_and_the_balance(server, key, tmp_path):
    response = client(server, key).run_sync(
        "veo-2", prompt="a red panda riding a skateboard", seed=965002, duration=6, aspect_ratio="9:16"
    )
    path = tmp_path / "out.mp4"
    path.write_bytes(response.content)
    video = decode(path)
    assert response.headers["content-type"] == "video/mp4"
    assert video["height"] > video["width"]  # 9:16
    assert abs(video["duration"] - 6) <= 1 / video["fps"] + 1e-3
    cost = 6 * PRICE_PER_SECOND
    assert float(response.headers["x-cost"]) == pytest.approx(cost)
    assert float(response.headers["x-remaining-credits"]) == pytest.approx(10 - cost)
    assert float(response.headers["x-remaining-credits"]) == credits(server, key)
    assert response.headers["x-seed-value"] == "965002"
    assert float(response.headers["x-generation-time"]) > 0
    assert len(response.headers["x-request-id"]) == 32


def test_run_async_completes_and_its_output_url_downloads(server, key, tmp_path):
    result = client(server, key).run(
        "veo-2", prompt="a lighthouse at dusk", duration="5", aspect_ratio="16:9"
    )
    assert result["status"] == "COMPLETED"
    assert result["output"].startswith(server.url + "/files/")
    download = httpx.get(result["output"])
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    path = tmp_path / "async.mp4"
    path.write_bytes(download.content)
    video = decode(path)
    assert video["width"] > video["height"] and abs(video["duration"] - 5) <= 1 / video["fps"] + 1e-3
    assert credits(server, key) == pytest.approx(10 - 5 * PRICE_PER_SECOND)

    partial = httpx.get(result["output"], headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and partial.content == download.content[100:200]
    tampered = result["output"].replace("signature=", "signature=0")
    assert httpx.get(tampered).status_code == 403


def test_v2_status_reports_absolute_urls_and_metrics(server, key):
    submitted = httpx.post(
        f"{server.url}/v2/veo-2",
        headers={"x-api-key": key, "x-forwarded-proto": "https", "x-forwarded-host": "videos.example.com"},
        json={"prompt": "rain on a window"},
    ).json()
    assert submitted["status"] == "QUEUED"
    assert (
        submitted["status_url"] == f"https://videos.example.com/v2/requests/{submitted['request_id']}/status"
    )
    status = httpx.get(
        f"{server.url}/v2/requests/{submitted['request_id']}/status", headers={"x-api-key": key}
    ).json()
    assert status["status"] in ("QUEUED", "PROCESSING", "COMPLETED")
    assert 0 <= status["metrics"]["progress"] <= 1


def test_the_same_seed_gives_the_same_video(server, key, tmp_path):
    """The same generation, told apart only by each job's watermark and signed manifest
    (docs/provenance.md): frames far closer to each other than to another seed's."""
    sdk = client(server, key)
    frames = []
    for index, seed in enumerate((42, 42, 43)):
        path = tmp_path / f"{index}.mp4"
        path.write_bytes(sdk.run_sync("veo-2", prompt="waves", seed=seed, duration=5).content)
        frames.append(decode(path)["frames"].astype(float))
    same, other = np.abs(frames[0] - frames[1]).mean(), np.abs(frames[0] - frames[2]).mean()
    assert same < other / 3, (same, other)


def test_random_seed_is_reported(server, key):
    response = client(server, key).run_sync("veo-2", prompt="a fox", seed=-1, duration=5)
    assert 0 <= int(response.headers["x-seed-value"]) < 2**32


def test_image_to_video_as_multipart_file_and_as_data_url(server, key, tmp_path):
    image = png_bytes(200, 120)
    upload = httpx.post(
        f"{server.url}/v1/veo-2-image2video",
        headers={"x-api-key": key},
        data={"prompt": "the scene comes alive", "duration": "5", "aspect_ratio": "16:9"},
        files={"image": ("first.png", image, "image/png")},
        timeout=120,
    )
    assert upload.status_code == 200, upload.text
    path = tmp_path / "i2v.mp4"
    path.write_bytes(upload.content)
    assert decode(path)["frames"].shape[0] > 1

    data_url = "data:image/png;base64," + base64.b64encode(image).decode()
    as_json = httpx.post(
        f"{server.url}/v1/veo-2-image2video",
        headers={"x-api-key": key},
        json={"prompt": "the scene comes alive", "image": data_url},
        timeout=120,
    )
    assert as_json.status_code == 200, as_json.text


def test_urlencoded_bodies_work(server, key):
    response = httpx.post(
        f"{server.url}/v1/veo-2",
        headers={"x-api-key": key},
        data={"prompt": "a quiet forest", "duration": "5", "aspect_ratio": "16:9", "seed": "3"},
        timeout=120,
    )
    assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert response.status_code == 200 and response.headers["x-seed-value"] == "3"


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return body["error"]


def test_sdk_surfaces_the_error_message(server, key):
    with pytest.raises(SegmindError) as caught:
        client(server, key).run_sync("veo-2", prompt="x", duration=9)
    assert caught.value.status == 422
    assert "duration" in caught.value.detail and "4, 5, 6, 7, 8" in caught.value.detail


def test_auth_errors(server, key):
    url = f"{server.url}/v1/veo-2"
    missing = httpx.post(url, json={"prompt": "x"})
    assert missing.status_code == 401 and error_of(missing) == "Missing x-api-key in header"
    unknown = httpx.post(url, json={"prompt": "x"}, headers={"x-api-key": "ov-not-a-key"})
    assert unknown.status_code == 401 and "invalid" in error_of(unknown)
    revoked_key = server.new_key(credits=1)
    assert server.cli("keys", "revoke", revoked_key).returncode == 0
    revoked = httpx.post(url, json={"prompt": "x"}, headers={"x-api-key": revoked_key})
    assert revoked.status_code == 401 and "revoked" in error_of(revoked)
    credits_call = httpx.get(f"{server.url}/v1/get-user-credits")
    assert credits_call.status_code == 401 and error_of(credits_call)


def test_path_and_method_errors(server, key):
    headers = {"x-api-key": key}
    slug = httpx.post(f"{server.url}/v1/veo-9", json={"prompt": "x"}, headers=headers)
    assert slug.status_code == 404 and "veo-9" in error_of(slug)
    path = httpx.get(f"{server.url}/nowhere", headers=headers)
    assert path.status_code == 404 and error_of(path)
    method = httpx.get(f"{server.url}/v1/veo-2", headers=headers)
    assert method.status_code == 405 and "POST" in error_of(method)
    unknown_request = httpx.get(f"{server.url}/v2/requests/{'0' * 32}/status", headers=headers)
    assert unknown_request.status_code == 404 and error_of(unknown_request)


def test_insufficient_credits_and_content_type_are_406(server):
    poor = server.new_key(credits=0.04)  # a 5 s video costs 0.05
    response = httpx.post(f"{server.url}/v1/veo-2", json={"prompt": "x"}, headers={"x-api-key": poor})
    assert response.status_code == 406 and "insufficient credits" in error_of(response)
    assert credits(server, poor) == pytest.approx(0.04)
    wrong_type = httpx.post(
        f"{server.url}/v1/veo-2",
        content="prompt: x",
        headers={"x-api-key": poor, "content-type": "text/plain"},
    )
    assert wrong_type.status_code == 406 and "Content-Type" in error_of(wrong_type)


@pytest.mark.parametrize(
    ("body", "field", "allowed"),
    [
        ({"prompt": "x", "duration": 9}, "duration", "4, 5, 6, 7, 8"),
        ({"prompt": "x", "duration": "five"}, "duration", "integer"),
        ({"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio", "16:9"),
        ({"prompt": "x", "seed": "abc"}, "seed", "integer"),
        ({"prompt": ""}, "prompt", "non-empty"),
        ({"duration": 5}, "prompt", "required"),
        ({"prompt": "x", "style": "noir"}, "style", "prompt"),
        ({"prompt": "x" * 32_001}, "prompt", "32000"),
    ],
)
def test_invalid_fields_are_422_naming_field_and_allowed_values(server, key, body, field, allowed):
    response = httpx.post(f"{server.url}/v1/veo-2", json=body, headers={"x-api-key": key})
    assert response.status_code == 422
    message = error_of(response)
    assert field in message and allowed in message
    assert credits(server, key) == 10


def test_size_limits_are_clear_errors(server, key):
    headers = {"x-api-key": key}
    big_image = base64.b64encode(b"\0" * (20 * 1024 * 1024 + 1)).decode()
    image = httpx.post(
        f"{server.url}/v1/veo-2-image2video", json={"prompt": "x", "image": big_image}, headers=headers
    )
    assert image.status_code == 422 and "image" in error_of(image) and "bytes" in error_of(image)
    body = httpx.post(
        f"{server.url}/v1/veo-2",
        content=b"{" + b" " * (33 * 1024 * 1024) + b"}",
        headers={**headers, "content-type": "application/json"},
    )
    assert body.status_code == 422 and "too large" in error_of(body)
    not_json = httpx.post(
        f"{server.url}/v1/veo-2", content=b"{nope", headers={**headers, "content-type": "application/json"}
    )
    assert not_json.status_code == 422 and "JSON" in error_of(not_json)
    assert credits(server, key) == 10


def test_bad_webhook_urls_and_signatures_are_clear_errors(server, key):
    headers = {"x-api-key": key}
    for bad in ("not a url", "ftp://example.com/hook", {"url": "x"}):
        response = httpx.post(
            f"{server.url}/v2/veo-2", json={"prompt": "x", "webhook_url": bad}, headers=headers
        )
        assert response.status_code == 422 and "webhook_url" in error_of(response)
    long_key = httpx.post(
        f"{server.url}/v1/jobs", json={"prompt": "x"}, headers={**headers, "idempotency-key": "k" * 201}
    )
    assert long_key.status_code == 422 and "Idempotency-Key" in error_of(long_key)
    odd = httpx.get(f"{server.url}/files/jobs/x/video-0.mp4?expires=99999999999&signature=%C3%A9")
    assert odd.status_code == 403 and error_of(odd)
    assert credits(server, key) == 10

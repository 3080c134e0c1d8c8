"""openveo's own job API over HTTP: live progress as server-sent events, listing, cancel, thumbnails."""

from __future__ import annotations

import json

import httpx
from PIL import Image

from tests.helpers import png_bytes


def events(server, key: str, job_id: str) -> list[dict]:
    """Every `job` event of the stream until the server ends it."""
    seen = []
    with httpx.stream(
        "GET", f"{server.url}/v1/jobs/{job_id}/events", headers={"x-api-key": key}, timeout=120
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                assert kind == "job"
                seen.append(json.loads(line.split(":", 1)[1]))
    return seen


def test_events_stream_every_step_then_the_result(server, key, tmp_path):
    headers = {"authorization": f"Bearer {key}"}
    created = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "a comet", "steps": 8}, headers=headers)
    assert created.status_code == 201
    stream = events(server, key, created.json()["id"])
    steps = [e["step"] for e in stream if e["status"] == "running"]
    assert steps == sorted(steps) and max(steps) == 8 and len(set(steps)) >= 4  # live, in order
    final = stream[-1]
    assert final["status"] == "succeeded" and final["progress"] == 1.0 and final["charged"]
    thumbnail = httpx.get(final["videos"][0]["thumbnail_url"])
    assert thumbnail.headers["content-type"] == "image/jpeg"
    path = tmp_path / "thumb.jpg"
    path.write_bytes(thumbnail.content)
    with Image.open(path) as image:
        assert image.size == (160, 96)


def test_cancel_stops_a_running_job_and_refunds(server, key):
    headers = {"x-api-key": key}
    before = httpx.get(f"{server.url}/v1/get-user-credits", headers=headers).json()["credits"]
    job_id = httpx.post(
        f"{server.url}/v1/jobs", json={"prompt": "long", "steps": 100, "num_videos": 4}, headers=headers
    ).json()["id"]
    with httpx.stream("GET", f"{server.url}/v1/jobs/{job_id}/events", headers=headers, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["step"] >= 1:
                break
    canceled = httpx.post(f"{server.url}/v1/jobs/{job_id}/cancel", headers=headers).json()
    assert canceled["status"] in ("running", "canceled")
    final = events(server, key, job_id)[-1]
    assert final["status"] == "canceled" and final["step"] < 400 and not final["charged"]
    assert httpx.get(f"{server.url}/v1/get-user-credits", headers=headers).json()["credits"] == before


def test_list_shows_only_the_callers_jobs_in_pages(server):
    mine, theirs = server.new_key(credits=5), server.new_key(credits=5)
    ids = [
        httpx.post(f"{server.url}/v2/veo-2", json={"prompt": f"n{i}"}, headers={"x-api-key": mine}).json()[
            "request_id"
        ]
        for i in range(3)
    ]
    httpx.post(f"{server.url}/v2/veo-2", json={"prompt": "other"}, headers={"x-api-key": theirs})
    first = httpx.get(f"{server.url}/v1/jobs?limit=2", headers={"x-api-key": mine}).json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = httpx.get(
        f"{server.url}/v1/jobs?limit=2&after={first['last_id']}", headers={"x-api-key": mine}
    ).json()
    assert [j["id"] for j in rest["data"]] == ids[:1] and not rest["has_more"]
    other = httpx.get(f"{server.url}/v1/jobs/{ids[0]}", headers={"x-api-key": theirs})
    assert other.status_code == 404 and "error" in other.json()
    bad = httpx.get(f"{server.url}/v1/jobs?limit=500", headers={"x-api-key": mine})
    assert bad.status_code == 422 and "limit" in bad.json()["error"]


def test_native_validation_names_the_field(server, key):
    response = httpx.post(
        f"{server.url}/v1/jobs",
        json={"prompt": "x", "model": "tiny-wan2.1", "image": png_bytes().hex()},
        headers={"x-api-key": key},
    )
    assert response.status_code == 422 and "image" in response.json()["error"]
    response = httpx.post(
        f"{server.url}/v1/jobs", json={"prompt": "x", "num_videos": 9}, headers={"x-api-key": key}
    )
    assert response.status_code == 422 and "num_videos" in response.json()["error"]


def test_idempotency_key_makes_retries_safe(server, key):
    headers = {"x-api-key": key, "idempotency-key": "order-42"}
    first = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "once"}, headers=headers).json()
    second = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "once"}, headers=headers).json()
    assert first["id"] == second["id"]


def test_models_lists_the_served_model_in_openai_s_shape(server, key):
    from openai import OpenAI

    listed = OpenAI(base_url=f"{server.url}/v1", api_key=key).models.list()  # the SDK reads it
    assert [m.id for m in listed.data] == ["tiny-wan2.2"] and listed.data[0].owned_by == "openveo"
    [model] = httpx.get(f"{server.url}/v1/models", headers={"x-api-key": key}).json()["data"]
    assert model["default"] and model["test_model"] and model["image_to_video"]
    assert (
        model["durations"] == [4, 5, 6, 7, 8]
        and model["default_duration"] == 5
        and model["aspect_ratios"]["9:16"] == "96x160"
    )
    assert {"veo-2", "sora-2", "tiny"} <= set(model["aliases"]) and model["price_per_second"] == 0.01
    assert httpx.get(f"{server.url}/v1/models").status_code == 401

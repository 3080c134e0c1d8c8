"""LoRA adapters through every protocol, with the unmodified SDKs, against the service on the tiny model:
a request names a registered adapter and gets its video; a bad choice is refused in the protocol's own
error format with nothing charged."""

from __future__ import annotations

import shutil
import time

import httpx
import openai
import pytest
from openai import OpenAI
from segmind import SegmindClient
from segmind.exceptions import SegmindError

from openveo.provenance.manifest import read_manifest
from openveo.service.loras import file_key
from tests.helpers import decode


@pytest.fixture()
def adapters(server, tiny_loras) -> dict[str, str]:
    """style and motion fit the tiny Wan model the server runs; ltx fits tiny LTX only; broken was
    registered whole and then lost its stored file."""
    registry = server.runtime.loras
    known = registry.all()
    for name, file in (("style", "style"), ("motion", "motion"), ("ltx", "ltx"), ("broken", "wide")):
        if name not in known:
            known[name] = registry.add(name, tiny_loras[file])
    stored = registry.blobs.local_path(file_key(known["broken"].sha256))
    shutil.rmtree(stored.parent, ignore_errors=True)
    return {name: lora.sha256 for name, lora in known.items()}


def credits(server, key: str) -> float:
    return httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()["credits"]


def wait(server, key: str, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers={"x-api-key": key}).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_native_jobs_apply_their_adapters_and_say_which(server, key, adapters, tmp_path):
    body = {"prompt": "a lantern", "seed": 5, "loras": [{"name": "style", "scale": 0.7}, {"name": "motion"}]}
    created = httpx.post(f"{server.url}/v1/jobs", json=body, headers={"x-api-key": key})
    assert created.status_code == 201, created.text
    job = wait(server, key, created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["request"]["loras"] == [
        {"name": "style", "sha256": adapters["style"], "scale": 0.7},
        {"name": "motion", "sha256": adapters["motion"], "scale": 1.0},
    ]
    path = tmp_path / "styled.mp4"
    path.write_bytes(httpx.get(job["videos"][0]["url"]).content)
    assert len(decode(path)["frames"]) == 41  # 5 s at 8 fps, 4k+1
    manifest = read_manifest(path)  # the Content Credentials name the adapters too
    assert manifest.valid and manifest.generation["loras"] == job["request"]["loras"]
    listed = httpx.get(f"{server.url}/v1/loras", headers={"x-api-key": key}).json()["data"]
    fits = {entry["name"]: entry["models"] for entry in listed}
    assert "tiny-wan2.2" in fits["style"] and fits["ltx"] == ["tiny-ltx", "tiny-ltx-condition"]  # one shape


def test_the_openai_sdk_asks_for_a_lora_through_extra_body(server, key, adapters):
    sdk = OpenAI(base_url=f"{server.url}/v1", api_key=key, timeout=120)
    loras = [{"name": "style", "scale": 1.5}]
    video = sdk.videos.create_and_poll(prompt="a paper plane", seconds="8", extra_body={"loras": loras})
    assert video.status == "completed"
    assert sdk.videos.retrieve(video.id).model_extra["loras"] == [{"name": "style", "scale": 1.5}]


def test_the_segmind_sdk_asks_for_a_lora_as_segminds_lora_endpoints_do(server, key, adapters, tmp_path):
    segmind = SegmindClient(api_key=key, base_url=f"{server.url}/v1", timeout=120)
    response = segmind.run_sync("veo-2", prompt="a red panda", duration=5, lora="motion", lora_scale=0.5)
    path = tmp_path / "segmind.mp4"
    path.write_bytes(response.content)
    assert response.headers["content-type"] == "video/mp4" and len(decode(path)["frames"]) == 41
    job = httpx.get(f"{server.url}/v1/jobs/{response.headers['x-request-id']}", headers={"x-api-key": key})
    assert job.json()["request"]["loras"] == [{"name": "motion", "sha256": adapters["motion"], "scale": 0.5}]


BAD_CHOICES = [
    ("nope", "'nope' is not a registered adapter"),
    ("ltx", "'ltx' is an adapter for tiny-ltx, tiny-ltx-condition; not for tiny-wan2.2"),
    ("broken", "'broken' cannot be used: its stored file does not exist"),
]


@pytest.mark.parametrize(("name", "message"), BAD_CHOICES)
def test_bad_adapters_are_refused_in_each_protocols_format_and_not_charged(
    server, key, adapters, name, message
):
    headers = {"x-api-key": key}
    native = httpx.post(
        f"{server.url}/v1/jobs", json={"prompt": "x", "loras": [{"name": name}]}, headers=headers
    )
    assert native.status_code == 422 and message in native.json()["error"]

    with pytest.raises(openai.BadRequestError) as refused:
        OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0).videos.create(
            prompt="x", extra_body={"loras": [{"name": name}]}
        )
    assert refused.value.param == "loras[0].name" and message in refused.value.message

    with pytest.raises(SegmindError) as segmind_refusal:
        SegmindClient(api_key=key, base_url=f"{server.url}/v1").run_sync("veo-2", prompt="x", lora=name)
    assert message in str(segmind_refusal.value)
    sync = httpx.post(f"{server.url}/v1/veo-2", json={"prompt": "x", "lora": name}, headers=headers)
    assert sync.status_code == 422 and set(sync.json()) == {"error"}
    assert message.replace("loras[0].name", "lora") in sync.json()["error"]

    assert credits(server, key) == 10  # nothing reserved, nothing charged


def test_a_scale_without_an_adapter_is_refused(server, key, adapters):
    url, headers = f"{server.url}/v2/veo-2", {"x-api-key": key}
    alone = httpx.post(url, json={"prompt": "x", "lora_scale": 0.5}, headers=headers)
    assert alone.status_code == 422 and "lora_scale needs a lora" in alone.json()["error"]
    scale = httpx.post(url, json={"prompt": "x", "lora": "style", "lora_scale": 3}, headers=headers)
    assert scale.status_code == 422
    assert scale.json()["error"].startswith("lora_scale must be a number from 0 to 2")

"""Image URLs and webhooks through every protocol: nothing inside the deployment is reached (a local
listener stands for it and must see no request), the refusal is the protocol's own clear error, and
nothing is queued or charged. An operator's allowlist lets an internal image server through."""

from __future__ import annotations

import base64

import httpx
import pytest

from openveo.service.outbound import NEUTRAL
from tests.helpers import png_bytes
from tests.inprocess import LocalServer
from tests.listener import Listener


@pytest.fixture(scope="module")
def server(local_sqlite):
    """What a client sends is refused before any database is asked: one kind is enough."""
    return local_sqlite


SPELLINGS = ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]", "0.0.0.0"]


@pytest.fixture()
def inside():
    with Listener(body=png_bytes()) as listener:
        yield listener


def credits(server, key: str) -> float:
    return httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()["credits"]


def jobs_of(server, key: str) -> list:
    return httpx.get(f"{server.url}/v1/jobs", headers={"x-api-key": key}).json()["data"]


@pytest.mark.parametrize("host", SPELLINGS)
def test_image_urls_inside_are_refused_on_every_protocol(server, key, inside, host):
    url = inside.url(host)
    headers = {"x-api-key": key}
    segmind = httpx.post(
        f"{server.url}/v2/veo-2-image2video", json={"prompt": "x", "image": url}, headers=headers
    )
    assert segmind.status_code == 422 and segmind.json() == {"error": f"image: {NEUTRAL}"}
    native = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "x", "image": url}, headers=headers)
    assert native.status_code == 422 and NEUTRAL in native.json()["error"]
    openai = httpx.post(
        f"{server.url}/v1/videos", data={"prompt": "x", "input_reference": url}, headers=headers
    )
    error = openai.json()["error"]
    assert openai.status_code == 400 and error["param"] == "input_reference" and NEUTRAL in error["message"]
    assert inside.requests == []
    assert credits(server, key) == 10 and jobs_of(server, key) == []


@pytest.mark.parametrize("host", SPELLINGS)
def test_webhooks_inside_are_refused_on_every_protocol(server, key, inside, host):
    hook = inside.url(host, "/hook")
    headers = {"x-api-key": key}
    segmind = httpx.post(f"{server.url}/v2/veo-2", json={"prompt": "x", "webhook_url": hook}, headers=headers)
    assert segmind.status_code == 422 and "webhook_url" in segmind.json()["error"]
    native = httpx.post(f"{server.url}/v1/jobs", json={"prompt": "x", "webhook_url": hook}, headers=headers)
    assert native.status_code == 422 and "internal" in native.json()["error"]
    gemini = httpx.post(
        f"{server.url}/v1beta/models/veo-2:predictLongRunning",
        json={"instances": [{"prompt": "x"}], "webhookConfig": {"uris": [hook]}},
        headers={"x-goog-api-key": key},
    )
    assert gemini.status_code == 400 and gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "webhookConfig.uris[0]" in gemini.json()["error"]["message"]
    assert inside.requests == []
    assert credits(server, key) == 10 and jobs_of(server, key) == []


@pytest.fixture(scope="module")
def trusting(tmp_path_factory, models_root):
    """A deployment whose operator allows loopback (an image server on the private network, say)."""
    data_dir = tmp_path_factory.mktemp("trusting")
    with LocalServer(data_dir, models_root, outbound_allow="127.0.0.1") as running:
        yield running


def test_an_allowed_image_server_is_fetched_and_an_empty_answer_is_no_image(trusting, inside):
    key = trusting.new_key()
    headers = {"x-api-key": key}
    made = httpx.post(
        f"{trusting.url}/v1/veo-2-image2video",
        json={"prompt": "x", "image": inside.url()},
        headers=headers,
        timeout=120,
    )
    assert made.status_code == 200 and made.headers["content-type"] == "video/mp4"
    assert [(method, path) for method, path, _ in inside.requests] == [("GET", "/image.png")]
    assert trusting.job_row(made.headers["x-request-id"]).image == png_bytes()

    with Listener(body=b"") as empty:
        refused = httpx.post(
            f"{trusting.url}/v1/jobs", json={"prompt": "x", "image": empty.url()}, headers=headers
        )
    assert refused.status_code == 422 and "image" in refused.json()["error"]
    inline = base64.b64encode(png_bytes()).decode()
    assert (
        httpx.post(
            f"{trusting.url}/v1/jobs", json={"prompt": "x", "image": inline}, headers=headers
        ).status_code
        == 201
    )

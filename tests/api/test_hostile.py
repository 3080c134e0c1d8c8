"""What a hostile client sends, on every protocol: text no database can store, bodies nested without
end, broken multipart. Each gets the protocol's own clear error; nothing is queued or charged, and
the key's lists keep working, even over rows an older version stored."""

from __future__ import annotations

import base64
import functools
import json
import time

import httpx
import pytest

from openveo.service.keys import authenticate
from openveo.store.schema import jobs


@pytest.fixture(scope="module")
def server(local_sqlite):
    """What a client sends is refused before any database is asked: one kind is enough."""
    return local_sqlite


# (path, the header the key goes in, a JSON body with PROMPT where the prompt goes)
PROTOCOLS = {
    "segmind": ("/v1/veo-2", "x-api-key", '{"prompt": PROMPT}'),
    "native": ("/v1/jobs", "x-api-key", '{"prompt": PROMPT}'),
    "openai": ("/v1/videos", "x-api-key", '{"prompt": PROMPT}'),
    "google": (
        "/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning",
        "x-goog-api-key",
        '{"instances": [{"prompt": PROMPT}]}',
    ),
}


def message(protocol: str, response: httpx.Response) -> str:
    """The error's text, read the way the protocol's own clients read it."""
    body = response.json()
    if protocol in ("segmind", "native"):
        assert set(body) == {"error"}
        return body["error"]
    if protocol == "google":
        assert body["error"]["status"] == "INVALID_ARGUMENT" and response.status_code == 400
    else:
        assert body["error"]["type"] == "invalid_request_error" and response.status_code == 400
    return body["error"]["message"]


def post(server, key: str, protocol: str, body: bytes, content_type: str = "application/json"):
    path, key_header, _ = PROTOCOLS[protocol]
    return httpx.post(
        f"{server.url}{path}",
        content=body,
        headers={key_header: key, "content-type": content_type},
        timeout=30,
    )


def untouched(server, key: str) -> None:
    headers = {"x-api-key": key}
    assert httpx.get(f"{server.url}/v1/get-user-credits", headers=headers).json() == {"credits": 10}
    listed = httpx.get(f"{server.url}/v1/jobs", headers=headers)
    assert listed.status_code == 200 and listed.json()["data"] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("text", "problem"), [(r'"x\ud800y"', "unpaired surrogate"), (r'"a\u0000b"', "NUL character")]
)
def test_text_no_database_can_store_is_refused(server, key, protocol, text, problem):
    body = PROTOCOLS[protocol][2].replace("PROMPT", text).encode()
    response = post(server, key, protocol, body)
    assert 400 <= response.status_code < 500, response.text
    assert problem in message(protocol, response) and "prompt" in message(protocol, response)
    untouched(server, key)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_json_nested_without_end_is_refused(server, key, protocol):
    deep = b'{"prompt": "x", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post(server, key, protocol, deep)
    assert 400 <= response.status_code < 500 and "nested" in message(protocol, response)
    untouched(server, key)


@pytest.mark.parametrize("protocol", ["segmind", "openai", "google"])
def test_broken_multipart_is_a_clear_400(server, key, protocol):
    no_boundary = post(server, key, protocol, b"--x\r\n", "multipart/form-data")
    assert no_boundary.status_code == 400 and "boundary" in message(protocol, no_boundary)
    cut_short = (
        b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na kite\r\n'
        b'--b\r\nContent-Disposition: form-data; name="seconds"\r\n\r\n8'
    )
    truncated = post(server, key, protocol, cut_short, "multipart/form-data; boundary=b")
    assert truncated.status_code == 400 and "cut short" in message(protocol, truncated)
    untouched(server, key)


def test_a_job_an_older_version_stored_with_broken_text_still_lists(server, key):
    """Before text was checked, a lone surrogate reached the database (escaped in the stored JSON)
    and every list of the key answered 500 from then on."""
    db = server.database()
    try:
        key_id = authenticate(db, key).id
        with db.write() as conn:
            conn.execute(
                jobs.insert().values(
                    id="0" * 31 + "1", key_id=key_id, protocol="openai", model="tiny-wan2.2",
                    request=json.dumps({"prompt": "x\ud800y", "model": "tiny-wan2.2", "seed": 1}),
                    status="failed", cost=0, billing="refunded", attempts=1, progress_step=0,
                    progress_total=0, cancel_requested=False, created_at=time.time(), updated_at=time.time(),
                )
            )  # fmt: skip
    finally:
        db.dispose()
    headers = {"x-api-key": key}
    for path in ("/v1/jobs", "/v1/videos", f"/v1/jobs/{'0' * 31}1", f"/v1/videos/video_{'0' * 31}1"):
        response = httpx.get(f"{server.url}{path}", headers=headers)
        assert response.status_code == 200, (path, response.text)
        assert "x\ufffdy" in response.text or "x\\ufffdy" in response.text


@functools.cache
def bomb() -> bytes:
    """A 20000x20000 single-colour PNG: a few hundred kilobytes that decode to 400 million pixels."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (20_000, 20_000), 7).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_a_decompression_bomb_is_refused_before_it_is_decoded(server, key):
    data = bomb()
    encoded = base64.b64encode(data).decode()
    vertex = httpx.post(
        f"{server.url}{PROTOCOLS['google'][0]}",
        json={
            "instances": [{"prompt": "x", "image": {"bytesBase64Encoded": encoded, "mimeType": "image/png"}}]
        },
        headers={"x-goog-api-key": key},
    )
    assert "pixels" in message("google", vertex)
    openai = httpx.post(
        f"{server.url}/v1/videos",
        data={"prompt": "x"},
        files={"input_reference": ("bomb.png", data, "image/png")},
        headers={"x-api-key": key},
    )
    assert "pixels" in message("openai", openai) and openai.json()["error"]["param"] == "input_reference"
    native = httpx.post(
        f"{server.url}/v1/jobs",
        json={"prompt": "x", "image": f"data:image/png;base64,{encoded}"},
        headers={"x-api-key": key},
    )
    assert native.status_code == 422 and "pixels" in message("native", native)
    untouched(server, key)


@pytest.mark.parametrize(
    ("instance", "parameters", "word"),
    [
        ({}, {"aspectRatio": ["16:9"]}, "aspectRatio"),
        ({"image": {"bytesBase64Encoded": 123, "mimeType": "image/png"}}, {}, "bytesBase64Encoded"),
        ({"image": {"mimeType": "image/png"}}, {}, "bytesBase64Encoded"),
        ({}, {"sampleCount": "2"}, "parameters.sampleCount"),
        ({}, {"durationSeconds": True}, "parameters.durationSeconds"),
        ({}, {"resolution": ["720p"]}, "parameters.resolution"),
        ({}, {"enhancePrompt": "yes"}, "parameters.enhancePrompt"),
        ({}, {"compressionQuality": "best"}, "compressionQuality"),
        ({}, {"personGeneration": ["allow_adult"]}, "parameters.personGeneration"),
    ],
)
def test_google_fields_of_the_wrong_type_are_invalid_arguments(server, key, instance, parameters, word):
    body = {"instances": [{"prompt": "x", **instance}], "parameters": parameters}
    response = httpx.post(f"{server.url}{PROTOCOLS['google'][0]}", json=body, headers={"x-goog-api-key": key})
    assert word in message("google", response)
    untouched(server, key)


def test_a_google_webhook_that_is_no_url_is_named_as_google_names_it(server, key):
    body = {"instances": [{"prompt": "x"}], "webhookConfig": {"uris": [17]}}
    response = httpx.post(f"{server.url}{PROTOCOLS['google'][0]}", json=body, headers={"x-goog-api-key": key})
    assert "webhookConfig.uris[0]" in message("google", response)
    untouched(server, key)


@pytest.mark.parametrize(
    ("protocol", "fields", "word"),
    [
        ("native", '"duration_s": NaN', "NaN"),
        ("native", '"guidance": Infinity', "Infinity"),
        ("native", '"seed": -Infinity', "-Infinity"),
        ("segmind", '"duration": 1e999', "out of range"),
        ("native", '"output_size": [1e300, 96]', "output_size"),
        ("native", '"output_size": {"160": 1, "96": 2}', "output_size"),
        ("native", '"output_size": [160.5, 96]', "output_size"),
        ("native", '"aspect_ratio": 0', "aspect_ratio"),
        ("segmind", '"aspect_ratio": false', "aspect_ratio"),
        ("openai", '"model": ["sora-2"]', "model"),
        ("openai", '"size": 1280', "size"),
        ("openai", '"seconds": true', "seconds"),
        ("openai", '"seconds": [8]', "seconds"),
    ],
)
def test_numbers_json_cannot_carry_and_values_of_the_wrong_type_are_refused(
    server, key, protocol, fields, word
):
    """Python's JSON reader takes NaN, Infinity and 1e999 (as infinity); JSON does not, nor does any
    field here. A value of the wrong type is refused, never read as something else."""
    body = PROTOCOLS[protocol][2].replace("PROMPT", f'"a fox", {fields}').encode()
    response = post(server, key, protocol, body)
    assert 400 <= response.status_code < 500, response.text
    assert word in message(protocol, response)
    untouched(server, key)


def test_a_wrong_method_is_405_on_every_route_in_its_own_format(server, key):
    headers = {"x-api-key": key}
    videos = httpx.put(f"{server.url}/v1/videos", headers=headers)
    assert videos.status_code == 405 and videos.json()["error"]["type"] == "invalid_request_error"
    assert "GET or POST" in videos.json()["error"]["message"]
    verify = httpx.get(f"{server.url}/v1/verify", headers=headers)
    assert verify.status_code == 405 and "POST" in verify.json()["error"]
    jobs_list = httpx.delete(f"{server.url}/v1/jobs", headers=headers)
    assert jobs_list.status_code == 405 and set(jobs_list.json()) == {"error"}
    slug = httpx.get(f"{server.url}/v1/veo-2", headers=headers)
    assert slug.status_code == 405 and "use POST" in slug.json()["error"]
    unknown = httpx.get(f"{server.url}/v1/veo-9", headers=headers)
    assert unknown.status_code == 404


def test_an_unknown_google_api_version_answers_as_google(server, key):
    response = httpx.post(
        f"{server.url}/v9beta/publishers/google/models/veo-2.0-generate-001:predictLongRunning",
        json={"instances": [{"prompt": "x"}]},
        headers={"x-goog-api-key": key},
    )
    assert response.status_code == 404 and response.json()["error"]["status"] == "NOT_FOUND"
    assert "v9beta" in response.json()["error"]["message"]


def test_verifying_garbage_names_no_server_path(server, key):
    response = httpx.post(
        f"{server.url}/v1/verify",
        content=b"\x00garbage" * 100,
        headers={"x-api-key": key, "content-type": "video/mp4"},
    )
    assert response.status_code == 422 and "not a readable video" in response.json()["error"]
    assert "/" not in response.json()["error"].replace("video/", "")


def test_a_bad_query_parameter_names_its_param(server, key):
    response = httpx.get(f"{server.url}/v1/videos?limit=abc", headers={"x-api-key": key})
    error = response.json()["error"]
    assert response.status_code == 400 and error["param"] == "limit" and "limit" in error["message"]


def test_result_links_answer_head_and_files_are_private(server, key):
    import os
    import stat

    made = httpx.post(f"{server.url}/v2/veo-2", json={"prompt": "a heron"}, headers={"x-api-key": key}).json()
    server.wait_status(key, made["request_id"], {"COMPLETED"})
    link = httpx.get(f"{server.url}/v2/requests/{made['request_id']}", headers={"x-api-key": key}).json()[
        "output"
    ]
    head = httpx.head(link)
    whole = httpx.get(link)
    assert head.status_code == 200 and head.content == b""
    assert (
        head.headers["content-length"] == str(len(whole.content)) and head.headers["accept-ranges"] == "bytes"
    )
    results = [p for p in (server.data_dir / "results").rglob("*") if p.is_file()]
    assert results and all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in results)
    database = server.data_dir / "openveo.db"
    if database.exists():  # SQLite: the file that holds the deployment's signing secret
        assert stat.S_IMODE(os.stat(database).st_mode) == 0o600


def test_an_input_the_model_cannot_read_fails_at_once_and_is_refunded(server, key):
    """A JPEG cut short passes the header check, then cannot be decoded: retrying cannot help."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 160, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    cut = base64.b64encode(buffer.getvalue()[:1500]).decode()
    made = httpx.post(
        f"{server.url}/v2/veo-2-image2video", json={"prompt": "x", "image": cut}, headers={"x-api-key": key}
    ).json()
    assert server.wait_status(key, made["request_id"], {"COMPLETED", "FAILED"}) == "FAILED"
    row = server.job_row(made["request_id"])
    assert row.attempts == 1 and row.billing == "refunded" and "input image could not be decoded" in row.error
    assert httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json() == {
        "credits": 10
    }


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"instances": [{"prompt": "x", "video": {"bytesBase64Encoded": "AA=="}}]}, "video"),
        (
            {"instances": [{"prompt": "x", "referenceImages": [{"referenceType": "STYLE"}]}]},
            "referenceImages",
        ),
        ({"instances": [{"prompt": "x", "mask": {}}]}, "mask"),
        ({"instances": [{"prompt": "x", "style": "noir"}]}, "style"),
        ({"instances": [{"prompt": "x"}], "frobnicate": 1}, "frobnicate"),
    ],
)
def test_google_fields_openveo_does_not_do_are_refused_not_billed(server, key, body, name):
    response = httpx.post(f"{server.url}{PROTOCOLS['google'][0]}", json=body, headers={"x-goog-api-key": key})
    assert name in message("google", response)
    untouched(server, key)


def test_only_a_completed_video_can_be_remixed(server, key):
    headers = {"x-api-key": key}
    made = httpx.post(f"{server.url}/v1/videos", data={"prompt": "a crane", "seconds": "8"}, headers=headers)
    video_id = made.json()["id"]
    httpx.post(f"{server.url}/v1/jobs/{video_id.removeprefix('video_')}/cancel", headers=headers)
    assert server.wait_status(key, video_id.removeprefix("video_"), {"FAILED"}) == "FAILED"  # canceled
    remix = httpx.post(
        f"{server.url}/v1/videos/{video_id}/remix", json={"prompt": "a heron"}, headers=headers
    )
    error = remix.json()["error"]
    assert remix.status_code == 400 and error["param"] == "video_id" and "completed" in error["message"]
    credits = httpx.get(f"{server.url}/v1/get-user-credits", headers=headers).json()["credits"]
    assert credits == 10 and len(httpx.get(f"{server.url}/v1/jobs", headers=headers).json()["data"]) == 1

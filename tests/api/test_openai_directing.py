"""OpenAI's Videos API beyond Sora's create: `client.videos.extend` (`POST /v1/videos/extensions`,
a video by id or as a file) and the open servers' dialect of create (SGLang, vLLM-Omni, FastVideo:
`size` as any WxH, `num_frames`, `fps`, `num_inference_steps`, `guidance_scale`, `negative_prompt`,
`seed`), with the unmodified openai SDK against the service on the tiny models."""

from __future__ import annotations

import base64
import time

import httpx
import openai
import pytest

from openveo.core.catalog import Capability
from tests.api.test_directing import psnr
from tests.helpers import credits_of as credits
from tests.helpers import decode, finished_native_job, png_bytes
from tests.inprocess import LocalServer

VACE = "tiny-wan2.1-vace"


@pytest.fixture(scope="module")
def directing(tmp_path_factory, models_root):
    with LocalServer(
        tmp_path_factory.mktemp("openai-directing"),
        models_root,
        capability_models={Capability.EXTEND: VACE},
        watermark=False,
        c2pa=False,
    ) as running:
        yield running


def client_for(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.url}/v1", max_retries=0)


def completed(client: openai.OpenAI, video):
    deadline = time.monotonic() + 120
    while video.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "the video never finished"
        time.sleep(0.3)
        video = client.videos.retrieve(video.id)
    assert video.status == "completed", video.error
    return video


def extend_by_id(client: openai.OpenAI, video_id: str, seconds: str = "4", prompt: str = "it climbs"):
    """`videos.extend(video={"id": ...})` as the API defines it. openai 3.63's `extend` refuses a dict
    for `video` before sending (it expects a file there), so the SDK's own client posts the JSON."""
    body = {"prompt": prompt, "seconds": seconds, "video": {"id": video_id}}
    return client.post("/videos/extensions", body=body, cast_to=openai.types.Video)


def test_open_dialect_create_reports_what_it_made(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    client = client_for(directing, key)
    video = completed(
        client,
        client.videos.create(
            prompt="a lantern on a jetty",
            model="tiny-wan2.2",
            extra_body={
                "size": "160x96",
                "num_frames": 41,
                "fps": 8,
                "num_inference_steps": 2,
                "guidance_scale": 4.0,
                "negative_prompt": "blurry",
                "seed": 12,
            },
        ),
    )
    made = video.model_dump()
    assert (made["size"], made["seconds"], made["num_frames"], made["fps"]) == ("160x96", "5", 41, 8)
    assert (made["num_inference_steps"], made["guidance_scale"], made["seed"]) == (2, 4.0, 12)
    path = tmp_path / "lantern.mp4"
    client.videos.download_content(video.id).write_to_file(path)
    decoded = decode(path)
    assert (decoded["width"], decoded["height"], len(decoded["frames"])) == (160, 96, 41)
    portrait = completed(
        client, client.videos.create(prompt="tall", model="tiny-wan2.2", extra_body={"size": "96x160"})
    )
    assert portrait.model_dump()["size"] == "96x160"
    assert credits(directing, key) == pytest.approx(10 - 2 * 5 * 0.01)


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"size": "170x100"}, "size", "the nearest is 160x96"),
        ({"size": "big"}, "size", "WIDTHxHEIGHT"),
        ({"num_frames": 40}, "num_frames", "the nearest is 41"),
        ({"num_frames": 400}, "num_frames", "the nearest is 65"),
        ({"fps": 24}, "fps", "must be 8"),
        ({"num_inference_steps": 0}, "num_inference_steps", "from 1 to 100"),
        ({"guidance_scale": "lots"}, "guidance_scale", "must be a number"),
        ({"seconds": "8", "num_frames": 41}, "num_frames", "seconds '8' makes 65"),
    ],
)
def test_open_dialect_values_the_model_cannot_make_are_refused_with_the_nearest(
    directing, extra, param, words
):
    key = directing.new_key(credits=10.0)
    client = client_for(directing, key)
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.create(prompt="x", model="tiny-wan2.2", extra_body=extra)
    error = caught.value.body
    assert error["param"] == param and words in error["message"], error
    assert credits(directing, key) == 10


def test_openai_sdk_extends_a_video_by_id_and_as_a_file(directing, tmp_path):
    key = directing.new_key(credits=10.0)
    client = client_for(directing, key)
    source = completed(
        client,
        client.videos.create(prompt="a kite", model="sora-2", seconds="8", extra_body={"size": "160x96"}),
    )
    source_path = tmp_path / "kite.mp4"
    client.videos.download_content(source.id).write_to_file(source_path)
    extended = completed(client, extend_by_id(client, source.id))
    assert directing.job_row(extended.id.removeprefix("video_")).model == VACE
    assert extended.model_dump()["extended_from_video_id"] == source.id
    path = tmp_path / "kite-longer.mp4"
    client.videos.download_content(extended.id).write_to_file(path)
    before, after = decode(source_path), decode(path)
    assert len(after["frames"]) == len(before["frames"]) + 4 * 8
    with source_path.open("rb") as upload:
        from_file = completed(client, client.videos.extend(prompt="it climbs", seconds="4", video=upload))
    again = tmp_path / "from-file.mp4"
    client.videos.download_content(from_file.id).write_to_file(again)
    assert len(decode(again)["frames"]) == len(after["frames"])
    assert credits(directing, key) == pytest.approx(10 - 8 * 0.01 - 2 * 4 * 0.01)

    stranger = directing.new_key(credits=10.0)
    with pytest.raises(openai.NotFoundError):
        extend_by_id(client_for(directing, stranger), source.id)
    with pytest.raises(openai.BadRequestError) as caught:
        extend_by_id(client, source.id, seconds="8")
    assert caught.value.body["param"] == "seconds" and "from 1 to 4" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.extend(prompt="no", seconds="4", video=("notes.mp4", b"not a video", "video/mp4"))
    assert caught.value.body["param"] == "video" and "not a readable video" in caught.value.body["message"]
    assert credits(directing, stranger) == 10
    assert credits(directing, key) == pytest.approx(10 - 8 * 0.01 - 2 * 4 * 0.01)


def test_a_remix_keeps_what_the_video_was_made_from(directing, tmp_path):
    """A remix is the source's request again with a new prompt, inputs and all: a remixed extension
    extends the same video again (the source's frames, then other new ones), and a remixed video
    made from a first and a last frame keeps both (stored with the remix, as the worker reads them)."""
    key = directing.new_key(credits=10.0)
    client = client_for(directing, key)
    source = completed(
        client, client.videos.create(prompt="a kite", model="sora-2", extra_body={"size": "160x96"})
    )
    source_path = tmp_path / "kite.mp4"
    client.videos.download_content(source.id).write_to_file(source_path)
    extended = completed(client, extend_by_id(client, source.id, seconds="2"))
    remix = completed(client, client.videos.remix(extended.id, prompt="it dives"))
    made = remix.model_dump()
    assert made["remixed_from_video_id"] == extended.id and made["extended_from_video_id"] == source.id
    assert directing.job_row(remix.id.removeprefix("video_")).model == VACE
    paths = {}
    for name, video in (("extended", extended), ("remix", remix)):
        paths[name] = tmp_path / f"{name}.mp4"
        client.videos.download_content(video.id).write_to_file(paths[name])
    before, first, again = decode(source_path), decode(paths["extended"]), decode(paths["remix"])
    count = len(before["frames"])
    assert len(again["frames"]) == len(first["frames"]) == count + 2 * 8
    assert psnr(again["frames"][:count], before["frames"]) >= 40  # the same source, as it was
    # the new prompt's seconds (a tiny random text encoder moves them only a little)
    kept, added = slice(None, count), slice(count, None)
    assert psnr(again["frames"][added], first["frames"][added]) < psnr(
        again["frames"][kept], first["frames"][kept]
    )
    assert credits(directing, key) == pytest.approx(10 - 5 * 0.01 - 2 * 2 * 0.01)  # 5 s, the open dialect's

    # A video made from two frames (here through the native API), remixed with the openai SDK.

    def data_url(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode()

    first_frame, last_frame = png_bytes(160, 96, seed=1), png_bytes(160, 96, seed=2)
    body = {"prompt": "a door opens", "model": VACE, "image": data_url(first_frame),
            "last_image": data_url(last_frame), "seed": 4}  # fmt: skip
    job = httpx.post(f"{directing.url}/v1/jobs", json=body, headers={"x-api-key": key}).json()
    finished_native_job(directing, key, job["id"])
    remixed = completed(client, client.videos.remix(f"video_{job['id']}", prompt="a door closes"))
    assert directing.runtime.jobs.media_of(remixed.id.removeprefix("video_")) == {
        "image": directing.runtime.jobs.media_of(job["id"])["image"],
        "last_image": directing.runtime.jobs.media_of(job["id"])["last_image"],
    }
    assert directing.job_row(remixed.id.removeprefix("video_")).model == VACE


def test_a_remix_is_held_to_what_its_source_was_and_makes_one_video(directing):
    """A Veo video asked for without people (`personGeneration: dont_allow`), two of them, remixed with
    the openai SDK: a prompt with a person is refused as the source's would be, nothing charged; the
    remix makes one video, with the policy's negative prompt once, not twice."""
    from google.genai import types

    from tests.helpers import finished_operation
    from tests.helpers import vertex_client as vertex

    key = directing.new_key(credits=10.0)
    config = types.GenerateVideosConfig(seed=3, duration_seconds=5, person_generation="dont_allow",
                                        number_of_videos=2)  # fmt: skip
    google = vertex(directing, key)
    operation = finished_operation(
        google, google.models.generate_videos(model="veo-2.0-generate-001", prompt="a forest", config=config)
    )
    video_id = "video_" + operation.name.rsplit("/", 1)[-1]
    client = client_for(directing, key)
    spent = credits(directing, key)
    with pytest.raises(openai.BadRequestError) as caught:
        client.videos.remix(video_id, prompt="a man walks through the forest")
    assert caught.value.body["code"] == "moderation_blocked" and credits(directing, key) == spent
    remix = completed(client, client.videos.remix(video_id, prompt="a deer in the forest"))
    assert credits(directing, key) == pytest.approx(spent - 5 * 0.01)  # one video, not two
    headers = {"x-api-key": key}
    source = httpx.get(f"{directing.url}/v1/jobs/{video_id.removeprefix('video_')}", headers=headers).json()
    remade = httpx.get(f"{directing.url}/v1/jobs/{remix.id.removeprefix('video_')}", headers=headers).json()
    assert (
        remade["request"]["negative_prompt"]
        == source["request"]["negative_prompt"]
        == ("people, person, human, face, crowd")
    )
    assert remade["request"]["num_videos"] == 1

"""GenerationRequest validation: every bad input names its field and the allowed values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openveo.core.catalog import Catalog
from openveo.core.request import GenerationRequest, InvalidRequest, Limits, MaskMode, build_request
from tests.helpers import mask_png, png_bytes

LIMITS = Limits(max_prompt_chars=100, max_image_bytes=50_000)


def build(**fields):
    return build_request({"prompt": "a red panda", "model": "tiny", **fields}, Catalog(), LIMITS)


def rejected(**fields) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        build(**fields)
    return caught.value


def test_defaults_and_normalisation():
    request = build(duration_s="6", seed="42", num_videos="2", aspect_ratio="9:16", steps="3", guidance="4.5")
    assert request.model == "tiny-wan2.2"  # alias resolved to the preset
    assert (request.duration_s, request.seed, request.num_videos, request.aspect_ratio) == (6, 42, 2, "9:16")
    assert (request.steps, request.guidance, request.seed_was_random) == (3, 4.5, False)
    assert build().duration_s == 5 and build().aspect_ratio == "16:9"


@pytest.mark.parametrize("value", [3, 9, "abc", "5.5", True])
def test_bad_duration(value):
    error = rejected(duration_s=value)
    assert error.field == "duration_s"
    assert ("4, 5, 6, 7, 8" in error.message()) or ("integer" in error.message())


def test_duration_message_lists_allowed_values():
    assert "must be one of 4, 5, 6, 7, 8 seconds; got 9" in rejected(duration_s=9).message()
    assert rejected(duration_s=3).message("duration").startswith("duration must be one of 4, 5, 6, 7, 8")
    assert build().duration_s == 5  # left out: 5 s, where the model makes it


def test_bad_aspect_ratio():
    error = rejected(aspect_ratio="4:3")
    assert error.field == "aspect_ratio" and "16:9, 9:16" in error.message() and "'4:3'" in error.message()


def test_square_only_where_the_model_has_it():
    assert build(aspect_ratio="1:1").aspect_ratio == "1:1"  # tiny has a 1:1 size
    with pytest.raises(InvalidRequest) as caught:  # the 5B Wan has no native square size
        build_request({"prompt": "x", "model": "wan2.2-ti2v-5b", "aspect_ratio": "1:1"}, Catalog(), LIMITS)
    assert "16:9, 9:16" in caught.value.message()


@pytest.mark.parametrize("prompt", ["", "   ", None, 12])
def test_empty_or_missing_prompt(prompt):
    with pytest.raises(InvalidRequest) as caught:
        build_request({"prompt": prompt, "model": "tiny"}, Catalog(), LIMITS)
    assert caught.value.field == "prompt" and "non-empty" in caught.value.message()


def test_overlong_prompt():
    error = rejected(prompt="x" * 101)
    assert error.field == "prompt" and "at most 100 characters; got 101" in error.message()


@pytest.mark.parametrize("count", [0, 5, "many"])
def test_bad_num_videos(count):
    error = rejected(num_videos=count)
    assert error.field == "num_videos"
    assert "1 to 4" in error.message() or "integer" in error.message()


@pytest.mark.parametrize("seed", [None, -1, "-1", ""])
def test_random_seed_is_drawn_and_marked(seed):
    request = build(seed=seed)
    assert request.seed_was_random and 0 <= request.seed < 2**32


def test_drawn_seeds_differ():
    assert len({build(seed=-1).seed for _ in range(8)}) > 1


@pytest.mark.parametrize("seed", [-2, 2**63, "x"])
def test_bad_seed(seed):
    error = rejected(seed=seed)
    assert error.field == "seed" and ("-1 (random)" in error.message() or "integer" in error.message())


def test_unknown_model_lists_choices():
    error = rejected(model="veo-9")
    assert error.field == "model" and "tiny-wan2.2" in error.message() and "veo-2" in error.message()


def test_unknown_field():
    assert rejected(durationSeconds=5).field == "durationSeconds"


def test_steps_and_guidance_bounds():
    assert "1 to 100" in rejected(steps=0).message()
    assert rejected(guidance=-1).field == "guidance"
    assert "number from 0 to 30" in rejected(guidance="lots").message()


def test_image_is_checked():
    assert build(image=png_bytes()).image is not None
    error = rejected(image=b"definitely not an image")
    assert error.field == "image" and "PNG, JPEG or WebP" in error.message()
    too_big = rejected(image=png_bytes(400, 400))
    assert "at most 50000 bytes" in too_big.message()


def test_image_on_a_text_only_model():
    error = rejected(model="tiny-wan2.1", image=png_bytes())
    assert error.field == "image" and "not supported by tiny-wan2.1" in error.message()


def test_image_error_names_the_models_that_take_images():
    message = rejected(model="wan2.1-t2v-1.3b", image=png_bytes()).message()
    assert "wan2.2-ti2v-5b" in message and "ltx-video" in message and "wan2.1-t2v-14b" not in message


def test_last_frame_needs_a_first_and_a_model_that_ends_on_it():
    first, last = png_bytes(), png_bytes(seed=1)
    request = build(model="tiny-wan2.1-flf2v", image=first, last_image=last)
    assert (request.image, request.last_image) == (first, last)
    assert "last_image" not in request.to_json() and request.media == {"image": first, "last_image": last}
    error = rejected(model="tiny-wan2.1-flf2v", last_image=last)
    assert error.field == "last_image" and "needs a first frame" in error.message()
    error = rejected(model="tiny-wan2.1-flf2v", image=first)
    assert error.field == "last_image" and "is required: tiny-wan2.1-flf2v" in error.message()
    assert "tiny-wan2.2" in error.message()  # the test models that start on an image alone
    error = rejected(model="tiny", image=first, last_image=last)
    assert error.field == "last_image" and "not supported by tiny-wan2.2" in error.message()
    assert "tiny-wan2.1-flf2v" in error.message()
    error = rejected(model="tiny-wan2.1-flf2v", image=first, last_image=b"GIF89a not really")
    assert error.field == "last_image" and "PNG, JPEG or WebP" in error.message()


def test_an_alias_routes_a_last_frame_to_the_configured_model():
    from openveo.core.catalog import Capability

    catalog = Catalog(capability_models={Capability.LAST_FRAME: "tiny-wan2.1-flf2v"}, default_model="tiny")
    fields = {"prompt": "a red panda", "model": "veo-2", "image": png_bytes()}
    assert build_request(fields, catalog, LIMITS).model == "tiny-wan2.2"
    routed = build_request({**fields, "last_image": png_bytes(seed=2)}, catalog, LIMITS)
    assert routed.model == "tiny-wan2.1-flf2v"


VACE = "tiny-wan2.1-vace"


def test_reference_images_are_asset_images_and_at_most_three():
    one, two, three = png_bytes(seed=1), png_bytes(seed=2), png_bytes(seed=3)
    request = build(model=VACE, reference_images=[one, {"image": two, "type": "ASSET"}, {"image": three}])
    assert request.reference_images == (one, two, three)
    assert "reference_images" not in request.to_json()
    assert request.media == {f"reference_images.{i}": image for i, image in enumerate((one, two, three))}
    stored = GenerationRequest.from_json(request.to_json())
    assert stored.reference_images == () and stored.with_media(request.media) == request
    error = rejected(model=VACE, reference_images=[one] * 4)
    assert error.field == "reference_images" and "at most 3" in error.message()
    error = rejected(model=VACE, reference_images=[one, {"image": two, "type": "STYLE"}])
    assert error.field == "reference_images[1]" and "STYLE reference" in error.message()
    error = rejected(model=VACE, reference_images=[{"image": one, "type": "mood"}])
    assert error.field == "reference_images[0]" and "asset and style" in error.message()
    error = rejected(model=VACE, reference_images=[b"not an image"])
    assert error.field == "reference_images[0]" and "readable image" in error.message()
    error = rejected(model=VACE, reference_images="a picture")
    assert error.field == "reference_images" and "list of images" in error.message()
    error = rejected(reference_images=[one])  # tiny-wan2.2 shows no references
    assert error.field == "reference_images" and "not supported by tiny-wan2.2" in error.message()
    assert VACE in error.message()


def _video(tmp_path, seconds: float = 2, fps: int = 8, size: tuple[int, int] = (160, 96)) -> bytes:
    import numpy as np

    from openveo.engine.video import write_mp4

    frames = np.full((round(seconds * fps), size[1], size[0], 3), 90, dtype=np.uint8)
    return write_mp4(frames, tmp_path / f"v{seconds}-{fps}-{size}.mp4", fps).read_bytes()


def test_an_extension_keeps_the_source_shape_and_counts_the_seconds_added(tmp_path):
    source = _video(tmp_path)
    request = build(model=VACE, source_video=source, duration_s=3)
    assert (request.duration_s, request.aspect_ratio, request.output_size) == (3, "16:9", (160, 96))
    assert build(model=VACE, source_video=source).duration_s == 4  # without a length: the most it adds
    assert "source_video" not in request.to_json() and request.media == {"source_video": source}
    portrait = build(model=VACE, source_video=_video(tmp_path, size=(96, 160)))
    assert portrait.aspect_ratio == "9:16"
    cases = [
        ({"duration_s": 5}, "duration_s", "from 1 to 4 seconds"),
        ({"aspect_ratio": "9:16"}, "aspect_ratio", "must be 16:9, the source video's"),
        ({"output_size": "320x192"}, "output_size", "keeps the source video's 160x96"),
        ({"image": png_bytes()}, "image", "cannot be sent with a video to extend"),
    ]
    for extra, field, words in cases:
        error = rejected(model=VACE, source_video=source, **extra)
        assert error.field == field and words in error.message(), error.message()
    sources = [
        (b"\x00\x00\x00\x18ftypmp42 but nothing more", "is not a readable video"),
        (_video(tmp_path, fps=24), "must be at 8 fps"),
        (_video(tmp_path, seconds=31), "must be 1 to 30 seconds long"),
        (_video(tmp_path, seconds=0.5), "must be 1 to 30 seconds long"),
        (_video(tmp_path, size=(320, 96)), "makes videos of aspect ratio"),
    ]
    for data, words in sources:
        error = rejected(model=VACE, source_video=data)
        assert error.field == "source_video" and words in error.message(), error.message()
    error = rejected(source_video=source)
    assert error.field == "source_video" and "not supported by tiny-wan2.2" in error.message()
    big = Limits(max_video_bytes=100)
    with pytest.raises(InvalidRequest, match="at most 100 bytes"):
        build_request({"prompt": "p", "model": VACE, "source_video": source}, Catalog(), big)


def test_a_mask_edits_the_source_video_in_a_served_mode(tmp_path):
    source = _video(tmp_path, seconds=3)  # 24 frames at 8 fps, 160x96
    mask = mask_png(160, 96, (0, 0, 80, 96))
    request = build(model=VACE, source_video=source, mask=mask, mask_mode="INSERT")
    assert (request.mask_mode, request.duration_s, request.output_size) == (MaskMode.INSERT, 3, (160, 96))
    assert request.media == {"source_video": source, "mask": mask} and '"mask"' not in request.to_json()
    stored = GenerationRequest.from_json(request.to_json())
    assert stored.mask is None and stored.with_media(request.media) == request
    canvas = mask_png(320, 192, (120, 0, 200, 192))  # a portrait source goes in a landscape canvas
    portrait = _video(tmp_path, seconds=2, size=(96, 160))
    outpaint = build(model=VACE, source_video=portrait, mask=canvas, mask_mode="outpaint")
    assert (outpaint.aspect_ratio, outpaint.output_size) == ("16:9", (160, 96))
    cases = [
        ({"mask": mask, "mask_mode": "remove"}, "mask_mode", "tracks an object"),
        ({"mask": mask, "mask_mode": "erase"}, "mask_mode", "must be one of insert, remove, remove_static"),
        ({"mask": mask}, "mask_mode", "is required with a mask"),
        ({"mask_mode": "insert"}, "mask_mode", "needs a mask"),
        ({"mask": mask_png(160, 96, (0, 0, 0, 0)), "mask_mode": "insert"}, "mask", "black all over"),
        ({"mask": mask_png(96, 96, (0, 0, 9, 9)), "mask_mode": "insert"}, "mask", "source video's aspect"),
        ({"mask": b"not a png", "mask_mode": "insert"}, "mask", "readable image"),
        (
            {"mask": mask, "mask_mode": "insert", "duration_s": 3},
            "duration_s",
            "keeps the source video's length",
        ),
        ({"mask": mask, "mask_mode": "insert", "aspect_ratio": "9:16"}, "aspect_ratio", "must be 16:9"),
        ({"mask": mask_png(160, 96, (0, 0, 160, 96)), "mask_mode": "outpaint"}, "mask", "white all over"),
        (
            {"mask": mask_png(300, 100, (0, 0, 9, 9)), "mask_mode": "outpaint"},
            "mask",
            "makes videos of aspect",
        ),
        ({"mask": mask_png(320, 192, (100, 0, 101, 192)), "mask_mode": "outpaint"}, "mask", "too small"),
    ]
    for extra, field, words in cases:
        error = rejected(model=VACE, source_video=source, **extra)
        assert error.field == field and words in error.message(), error.message()
    error = rejected(model=VACE, mask=mask, mask_mode="insert")
    assert error.field == "mask" and "send the video to edit as well" in error.message()
    error = rejected(model=VACE, source_video=_video(tmp_path, seconds=6), mask=mask, mask_mode="insert")
    assert error.field == "source_video" and "at most 41 frames" in error.message()
    error = rejected(source_video=source, mask=mask, mask_mode="insert")
    assert error.field == "mask" and "not supported by tiny-wan2.2" in error.message()
    assert "edit a video inside a mask: " in error.message() and VACE in error.message()


# ---- any input at all: a valid request or an InvalidRequest naming a known field, nothing else ------

ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.binary(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
FIELD_NAMES = [
    "aspect_ratio",
    "duration_s",
    "guidance",
    "image",
    "last_image",
    "model",
    "negative_prompt",
    "num_videos",
    "output_size",
    "prompt",
    "reference_images",
    "seed",
    "source_video",
    "mask",
    "mask_mode",
    "steps",
]
SPECIAL = [math.inf, -math.inf, math.nan, 1e308, 2**70, -1, 0, 160, 96, "160", True]
NUMBERS = st.sampled_from(SPECIAL) | st.integers() | st.floats()
PAIRS = st.lists(NUMBERS, min_size=2, max_size=2) | st.tuples(NUMBERS, NUMBERS)  # where sizes go
VALUES = ANYTHING | NUMBERS | PAIRS | st.sampled_from(["5", "tiny", VACE, "9:16", "160x96", b"\x89PNG"])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(fields=st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=2))
def test_any_fields_give_a_request_or_a_named_refusal(fields):
    """The property every protocol relies on: whatever a parser hands over in a field or two of an
    otherwise valid request (NaN and infinities included, as Python reads them), `build_request`
    answers a request within its limits or an `InvalidRequest` on one of its fields, never another
    exception."""
    try:
        request = build_request({"prompt": "a red panda", "model": "tiny", **fields}, Catalog(), LIMITS)
    except InvalidRequest as refused:
        assert refused.field.partition("[")[0] in FIELD_NAMES  # a list's item: reference_images[1]
        return
    preset = Catalog().resolve(request.model)
    assert request.duration_s in preset.durations and request.aspect_ratio in preset.aspect_ratios
    assert 1 <= request.num_videos <= 4 and 0 <= request.seed < 2**63
    assert request.guidance is None or 0 <= request.guidance <= 30
    GenerationRequest.from_json(request.to_json())  # and it can be stored

"""Real generations on the tiny models (real diffusers architectures, random weights), decoded back."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from openveo.core.request import Limits, build_request
from openveo.engine.engine import Canceled
from openveo.engine.video import video_metadata, write_mp4
from tests.conftest import TINY_PRESETS
from tests.helpers import decode, mask_png, png_bytes


def request(catalog, **fields):
    return build_request(
        {"prompt": "a red panda riding a skateboard", "seed": 965002, **fields}, catalog, Limits()
    )


def render(engine, catalog, path, **fields):
    req = request(catalog, **fields)
    result = engine.generate(req)
    write_mp4(result.videos[0], path, result.fps, metadata=video_metadata(req.model, result.seeds[0]))
    return result


@pytest.mark.slow  # twelve generations, each decoded
@pytest.mark.parametrize("model", TINY_PRESETS)
@pytest.mark.parametrize("duration", [5, 8])  # 6 and 7 s: frame counts in test_catalog
@pytest.mark.parametrize("aspect", ["16:9", "9:16"])
def test_every_tiny_preset_duration_and_orientation(engine, catalog, tmp_path, model, duration, aspect):
    preset = catalog.resolve(model)
    path = tmp_path / "out.mp4"
    result = render(engine, catalog, path, model=model, duration_s=duration, aspect_ratio=aspect)
    video = decode(path)
    assert (video["codec"], video["pix_fmt"]) == ("h264", "yuv420p")
    assert video["fps"] == preset.fps
    assert len(video["frames"]) == preset.frames_for(duration) == result.num_frames
    assert (video["width"] > video["height"]) if aspect == "16:9" else (video["width"] < video["height"])
    assert (video["width"], video["height"]) == preset.size_for(aspect)
    assert abs(video["duration"] - duration) <= 1 / preset.fps + 1e-6
    assert video["metadata"]["ai_generated"] == "true" and video["metadata"]["openveo_model"] == model


def test_same_seed_same_bytes_other_seed_other_frames(engine, catalog, tmp_path):
    render(engine, catalog, tmp_path / "a.mp4", model="tiny")
    render(engine, catalog, tmp_path / "b.mp4", model="tiny")
    render(engine, catalog, tmp_path / "c.mp4", model="tiny", seed=7)
    digest = {
        name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        for name in ("a.mp4", "b.mp4", "c.mp4")
    }
    assert digest["a.mp4"] == digest["b.mp4"]
    a, c = decode(tmp_path / "a.mp4")["frames"], decode(tmp_path / "c.mp4")["frames"]
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0


def test_random_seed_is_reported_and_reproduces(engine, catalog):
    req = request(catalog, model="tiny-ltx", seed=-1)
    assert req.seed_was_random
    first = engine.generate(req)
    again = engine.generate(request(catalog, model="tiny-ltx", seed=first.seeds[0]))
    assert first.seeds == [req.seed] and np.array_equal(first.videos[0], again.videos[0])


def test_several_videos_use_consecutive_seeds(engine, catalog):
    result = engine.generate(request(catalog, model="tiny-ltx", num_videos=2, seed=10))
    single = engine.generate(request(catalog, model="tiny-ltx", seed=11))
    assert result.seeds == [10, 11] and len(result.videos) == 2
    assert not np.array_equal(result.videos[0], result.videos[1])
    assert np.array_equal(result.videos[1], single.videos[0])


def test_progress_every_step_and_stage_timings(engine, catalog):
    seen = []
    # A prompt no other test uses: the first video encodes it, the second finds it cached.
    fresh = request(catalog, model="tiny", steps=5, num_videos=2, prompt="a kite over the dunes at noon")
    result = engine.generate(fresh, on_progress=lambda *p: seen.append(p))
    assert seen == [(i, 10) for i in range(1, 11)]
    assert set(result.timings) == {"text_encoding", "denoising", "vae_decode"}
    assert all(seconds > 0 for seconds in result.timings.values())


@pytest.mark.parametrize("model", TINY_PRESETS)
def test_cancel_stops_within_one_step(engine, catalog, model):
    steps_run = []

    def progress(done, _total):
        steps_run.append(done)

    with pytest.raises(Canceled):
        engine.generate(
            request(catalog, model=model, steps=8),
            on_progress=progress,
            should_cancel=lambda: len(steps_run) >= 3,
        )
    assert steps_run == [1, 2, 3]  # asked to stop after step 3: no fourth step ran


@pytest.mark.parametrize("model", ["tiny-wan2.2", "tiny-ltx"])
def test_image_to_video(engine, catalog, model):
    text_only = engine.generate(request(catalog, model=model))
    with_image = engine.generate(request(catalog, model=model, image=png_bytes(seed=1)))
    other_image = engine.generate(request(catalog, model=model, image=png_bytes(seed=2, width=80, height=80)))
    assert with_image.videos[0].shape == text_only.videos[0].shape
    assert not np.array_equal(with_image.videos[0], text_only.videos[0])
    assert not np.array_equal(with_image.videos[0], other_image.videos[0])


def test_models_stay_resident(engine, catalog):
    assert engine.load("tiny") is engine.load("tiny-wan2.2")


def test_output_size_scales_and_crops_without_stretching(engine):
    import torch

    from openveo.engine.engine import finish_frames

    # A frame whose left half is black and right half white: after fitting 160x96 into 1280x720 the
    # edge stays in the middle, so nothing was stretched sideways.
    frames = torch.zeros((2, 3, 96, 160))
    frames[..., 80:] = 1.0
    fitted = finish_frames(frames, (1280, 720), None)
    assert fitted.shape == (2, 720, 1280, 3) and fitted.dtype == np.uint8
    row = fitted[0, 360, :, 0].astype(int)
    assert row[:600].max() < 10 and row[680:].min() > 245
    assert abs(int(np.argmax(row > 127)) - 640) <= 2


def test_generate_at_an_output_size(engine, catalog):
    from openveo.core.request import GenerationRequest

    request = GenerationRequest(prompt="a wave", model="tiny-wan2.1", seed=1, output_size=(320, 180))
    result = engine.generate(request)
    assert result.videos[0].shape[1:] == (180, 320, 3)
    assert (result.width, result.height) == (320, 180)


def test_an_extension_starts_with_the_source_frames_as_they_were(engine, catalog, tmp_path):
    """The answer is the source video, frame for frame as it decodes, then the new seconds; changing
    the source changes what is added."""
    from openveo.engine.video import read_frames

    made = engine.generate(request(catalog, model="tiny-wan2.1"))  # another model's video, 5 s at 8 fps
    source = write_mp4(made.videos[0], tmp_path / "source.mp4", made.fps).read_bytes()
    extended = engine.generate(request(catalog, model="tiny-wan2.1-vace", source_video=source, duration_s=2))
    frames = read_frames(source, 100)
    assert extended.num_frames == len(frames) + 16 == len(extended.videos[0]) and extended.source_frames == 41
    assert np.array_equal(extended.videos[0][: len(frames)], frames)
    still = np.repeat(frames[-1:], 41, axis=0)  # the same length, ending on the same frame, not moving
    other = write_mp4(still, tmp_path / "still.mp4", made.fps).read_bytes()
    from_still = engine.generate(request(catalog, model="tiny-wan2.1-vace", source_video=other, duration_s=2))
    assert not np.array_equal(from_still.videos[0][-16:], extended.videos[0][-16:])


LTX = "tiny-ltx-condition"


def test_ltx_keyframes_reach_the_model(engine, catalog):
    """LTX's condition pipeline: a first frame, a last frame held as a keyframe at the end; changing
    either changes the video, and without the last one it is the first frame's video, the same each time."""
    first, dusk, dawn = png_bytes(seed=1), png_bytes(seed=2), png_bytes(seed=3)
    only_first = engine.generate(request(catalog, model=LTX, image=first)).videos[0]
    to_dusk = engine.generate(request(catalog, model=LTX, image=first, last_image=dusk)).videos[0]
    to_dawn = engine.generate(request(catalog, model=LTX, image=first, last_image=dawn)).videos[0]
    other_first = engine.generate(request(catalog, model=LTX, image=dawn, last_image=dusk)).videos[0]
    assert to_dusk.shape == only_first.shape == (41, 96, 160, 3)
    assert not np.array_equal(to_dusk, to_dawn) and not np.array_equal(to_dusk, other_first)
    assert not np.array_equal(to_dusk, only_first)
    assert np.array_equal(engine.generate(request(catalog, model=LTX, image=first)).videos[0], only_first)


def test_an_ltx_extension_continues_the_source_from_its_last_frames(engine, catalog, tmp_path):
    """The source's last 8k+1 frames (41 of an 8 s source's 65, beside 3 new seconds) are the
    condition clip at frame 0: the answer is the source as it decodes, then the new seconds, which
    change with those last frames and not with the ones before them."""
    from openveo.engine.video import read_frames

    made = engine.generate(request(catalog, model="tiny-wan2.1", duration_s=8))
    source = write_mp4(made.videos[0], tmp_path / "source.mp4", made.fps).read_bytes()
    frames = read_frames(source, 100)
    assert len(frames) == 65

    def extended_from(video: np.ndarray, name: str) -> np.ndarray:
        data = write_mp4(video, tmp_path / f"{name}.mp4", made.fps).read_bytes()
        result = engine.generate(request(catalog, model=LTX, source_video=data, duration_s=3))
        assert result.num_frames == len(video) + 24 == len(result.videos[0])
        return result.videos[0]

    extended = engine.generate(request(catalog, model=LTX, source_video=source, duration_s=3)).videos[0]
    assert np.array_equal(extended[: len(frames)], frames)
    early_changed, late_changed = frames.copy(), frames.copy()
    early_changed[:20] = 255 - early_changed[:20]  # before the context: the pass does not see them
    late_changed[-20:] = 255 - late_changed[-20:]
    assert np.array_equal(extended_from(early_changed, "early")[-24:], extended_from(frames, "same")[-24:])
    assert not np.array_equal(extended_from(late_changed, "late")[-24:], extended[-24:])


def test_a_distilled_ltx_samples_at_its_timesteps_without_guidance(settings):
    """The 0.9.8 distilled recipe (its 8 timesteps, guidance 1: one transformer pass a step) on the
    tiny condition model: the transformer sees exactly those timesteps."""
    from dataclasses import replace

    from openveo.core.catalog import PRESETS, Catalog
    from openveo.engine.engine import Engine

    distilled = Catalog().resolve("ltxv-13b-0.9.8-distilled")
    tiny = replace(
        Catalog().resolve(LTX),
        name="tiny-ltx-distilled",
        steps=distilled.steps,
        timesteps=distilled.timesteps,
        guidance=distilled.guidance,
    )
    catalog = Catalog(presets=(*PRESETS, tiny))
    engine = Engine(settings, catalog)
    seen: list[tuple[float, int]] = []

    def record(_module, _args, kwargs):
        seen.append(
            (round(float(kwargs["timestep"].max()), 3), kwargs["hidden_states"].shape[0])
        )  # per token: the first frame's are 0

    engine.load(tiny.name).pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    engine.generate(request(catalog, model=tiny.name, image=png_bytes(seed=1)))
    assert seen == [(t, 1) for t in distilled.timesteps]


def test_an_edit_remakes_the_masked_region_and_keeps_the_rest(engine, catalog, tmp_path):
    """Insert and remove_static remake only the mask's white region, at the source's size and length:
    the rest is the source's own pixels; another mask remakes another region."""
    from openveo.engine.video import read_frames

    made = engine.generate(request(catalog, model="tiny-wan2.1"))  # 41 frames, 160x96
    source = write_mp4(made.videos[0][:23], tmp_path / "source.mp4", made.fps).read_bytes()  # a pass of 25
    frames = read_frames(source, 100)
    left = mask_png(160, 96, (0, 0, 64, 96))
    edit = dict(model="tiny-wan2.1-vace", source_video=source, mask=left)
    inserted = engine.generate(request(catalog, **edit, mask_mode="insert"))
    video = inserted.videos[0]
    assert video.shape == frames.shape and inserted.source_frames == len(frames)
    assert np.array_equal(video[:, :, 72:], frames[:, :, 72:])  # beyond the feathered edge: the source
    assert np.abs(video[:, :, :60].astype(int) - frames[:, :, :60]).mean() > 5  # remade
    right = engine.generate(
        request(catalog, **{**edit, "mask": mask_png(160, 96, (96, 0, 160, 96))}, mask_mode="insert")
    )
    assert np.array_equal(right.videos[0][:, :, :88], frames[:, :, :88])
    assert not np.array_equal(right.videos[0][:, :, 100:], frames[:, :, 100:])
    removed = engine.generate(request(catalog, **edit, mask_mode="remove_static", prompt="an empty street"))
    assert not np.array_equal(removed.videos[0][:, :, :60], video[:, :, :60])


def test_an_outpaint_puts_the_source_in_the_masks_box_and_makes_the_rest(engine, catalog, tmp_path):
    """An outpaint's mask is the new canvas: a portrait source in the white box of a landscape mask
    comes back there, whole, and the model makes the picture around it."""
    from openveo.engine.video import read_frames

    made = engine.generate(request(catalog, model="tiny-wan2.1", aspect_ratio="9:16"))
    source = write_mp4(made.videos[0][:17], tmp_path / "portrait.mp4", made.fps).read_bytes()
    frames = read_frames(source, 100)  # 17 frames, 96x160
    canvas = mask_png(320, 192, (112, 16, 208, 176))  # 16:9; the box is 48x80 on the 160x96 canvas
    out = engine.generate(
        request(catalog, model="tiny-wan2.1-vace", source_video=source, mask=canvas, mask_mode="outpaint")
    )
    video = out.videos[0]
    assert video.shape == (len(frames), 96, 160, 3) and (out.width, out.height) == (160, 96)
    from PIL import Image

    placed = np.stack(
        [np.asarray(Image.fromarray(f).resize((48, 80), Image.Resampling.LANCZOS)) for f in frames]
    )
    assert np.array_equal(
        video[:, 16:80, 64:96], placed[:, 8:72, 8:40]
    )  # the source, inside its feathered edge
    outside = np.abs(video[:, :, :40].astype(int) - 128).mean()
    assert outside > 5  # made, not left gray


def test_an_extended_video_carries_its_own_mark(engine, catalog, tmp_path):
    """Every frame, the source's included, is marked with the extension's payload (over the source's
    own mark), so the detector reads the new video's mark."""
    from openveo.engine.video import read_frames
    from openveo.provenance.identity import Watermark
    from openveo.provenance.watermark import detect

    key = b"k" * 32
    made = engine.generate(request(catalog, model="tiny-wan2.2"), watermark=Watermark(key, 0x1111))
    source = write_mp4(made.videos[0], tmp_path / "source.mp4", made.fps).read_bytes()
    extension = request(catalog, model="tiny-wan2.1-vace", source_video=source, duration_s=2)
    extended = engine.generate(extension, watermark=Watermark(key, 0x2222))
    path = write_mp4(extended.videos[0], tmp_path / "extended.mp4", extended.fps, crf=12)
    found = detect(read_frames(path.read_bytes(), 100), key)
    assert found.found and found.payload == 0x2222

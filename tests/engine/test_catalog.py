"""Every preset obeys its architecture's rules: checked from the catalog alone, without weights."""

from __future__ import annotations

import diffusers
import pytest

from openveo.core.catalog import PRESETS, Capability, Catalog, MissingCapability, UnknownModel

REQUIRED = {"wan2.1-t2v-1.3b", "wan2.1-t2v-14b", "wan2.2-ti2v-5b", "wan2.2-t2v-a14b", "ltx-video"}
FAMILY_FRAME_MULTIPLE = {"wan": 4, "ltx": 8}  # VAE temporal compression: Wan 4x, LTX 8x
# Spatial stride (VAE x patch) per architecture: Wan 2.1 8x2, Wan 2.2 TI2V 16x2, LTX 32x1.
DIM_MULTIPLE = {
    "wan2.1-t2v-1.3b": 16,
    "wan2.1-t2v-14b": 16,
    "wan2.2-t2v-a14b": 16,
    "wan2.2-ti2v-5b": 32,
    "ltx-video": 32,
    "tiny-wan2.1": 16,
    "tiny-wan2.2": 32,
    "tiny-ltx": 32,
    "wan2.1-t2v-1.3b-fast": 16,
    "wan2.1-t2v-14b-fast": 16,
    "wan2.2-t2v-a14b-fast": 16,
    "wan2.2-ti2v-5b-fast": 32,
    "tiny-wan2.1-fast": 16,
    "tiny-wan2.2-fast": 32,
    "wan2.1-i2v-14b-480p": 16,
    "wan2.1-i2v-14b-480p-fast": 16,
    "wan2.2-i2v-a14b": 16,
    "wan2.2-i2v-a14b-fast": 16,
    "tiny-wan2.1-i2v": 16,
    "tiny-wan2.1-i2v-fast": 16,
    "tiny-wan2.2-a14b": 16,
    "tiny-wan2.2-a14b-fast": 16,
    "wan2.1-flf2v-14b-720p": 16,
    "tiny-wan2.1-flf2v": 16,
    "wan2.1-vace-1.3b": 16,
    "wan2.1-vace-14b": 16,
    "tiny-wan2.1-vace": 16,
    "ltxv-13b-0.9.7-dev": 32,
    "ltxv-13b-0.9.8-distilled": 32,
    "tiny-ltx-condition": 32,
}


def test_required_presets_exist():
    assert {p.name for p in PRESETS} >= REQUIRED
    assert {"tiny-wan2.1", "tiny-wan2.2", "tiny-ltx"} <= {p.name for p in PRESETS}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_frames_sizes_and_fps_follow_the_model(preset):
    assert preset.frame_multiple == FAMILY_FRAME_MULTIPLE[preset.family]
    assert preset.dim_multiple == DIM_MULTIPLE[preset.name]
    for duration in preset.durations:
        frames = preset.frames_for(duration)
        assert frames % preset.frame_multiple == 1
        assert abs(frames - duration * preset.fps) <= 1  # within one frame of the requested duration
    for aspect, (width, height) in preset.sizes.items():
        assert width % preset.dim_multiple == 0 and height % preset.dim_multiple == 0
        assert (
            (width > height)
            if aspect == "16:9"
            else (width < height)
            if aspect == "9:16"
            else width == height
        )
    assert {"16:9", "9:16"} <= set(preset.aspect_ratios)
    assert getattr(diffusers, preset.pipeline)
    if preset.i2v_pipeline:
        assert getattr(diffusers, preset.i2v_pipeline)
    assert preset.price_per_second > 0 and 1 <= preset.steps <= preset.max_steps


def test_published_defaults():
    catalog = Catalog()
    assert catalog.resolve("wan2.1-t2v-1.3b").frames_for(5) == 81  # Wan's 81 frames at 16 fps
    assert catalog.resolve("wan2.2-ti2v-5b").frames_for(5) == 121  # 121 frames at 24 fps
    assert catalog.resolve("wan2.2-ti2v-5b").size_for("16:9") == (1280, 704)
    assert catalog.resolve("ltx-video").frames_for(8) == 193
    assert catalog.resolve("wan2.2-t2v-a14b").guidance_2 is not None


def test_aliases_resolve_and_are_configurable():
    assert Catalog().resolve("veo-2").name == "wan2.2-ti2v-5b"
    assert Catalog().resolve("tiny").name == "tiny-wan2.2"
    custom = Catalog(aliases={"veo-2": "ltx-video", "house": "veo-2"})
    assert custom.resolve("veo-2").name == "ltx-video" and custom.resolve("house").name == "ltx-video"
    with pytest.raises(ValueError, match="unknown model"):
        Catalog(aliases={"veo-2": "nonexistent"})
    with pytest.raises(UnknownModel):
        Catalog().resolve("veo-4")
    for veo3 in ("veo-3.0-generate-001", "veo-3.1-generate-001", "veo-3.1-lite-generate-001", "veo-3.1"):
        assert Catalog().resolve(veo3).name == "wan2.2-ti2v-5b"  # Vertex's Veo 3.x ids: the served model


def test_cost_scales_with_seconds_and_videos():
    preset = Catalog().resolve("wan2.1-t2v-1.3b")
    assert preset.cost(8, 2) == pytest.approx(preset.price_per_second * 16)


def test_call_arguments_follow_the_family():
    from openveo.engine.pipelines import call_arguments

    catalog = Catalog()
    common = dict(
        prompt="p", negative_prompt=None, width=1280, height=720, num_frames=81, steps=40, guidance=4.0
    )
    a14b = call_arguments(catalog.resolve("wan2.2-t2v-a14b"), **common, guidance_2=3.0)
    assert a14b["guidance_scale_2"] == 3.0 and "frame_rate" not in a14b
    ltx = call_arguments(catalog.resolve("ltx-video"), **common, guidance_2=None)
    assert ltx["frame_rate"] == 24 and "guidance_scale_2" not in ltx


TEXT, FIRST, LAST = Capability.TEXT, Capability.FIRST_FRAME, Capability.LAST_FRAME
REFERENCES, EXTEND = Capability.REFERENCE_IMAGES, Capability.EXTEND


def test_capabilities_follow_the_pipelines():
    """What each preset says it can do is what its diffusers pipeline and weights do (docs/api.md)."""
    for preset in PRESETS:
        assert preset.requires <= preset.capabilities
        conditioned = preset.vace or preset.keyframes  # any frame, or a clip, held where it is placed
        assert (FIRST in preset.capabilities) == (preset.i2v_pipeline is not None or conditioned)
        text_pipelines = ("WanPipeline", "LTXPipeline", "WanVACEPipeline", "LTXConditionPipeline")
        assert (TEXT in preset.capabilities) == (preset.pipeline in text_pipelines)
        # Only a transformer with learned positions for two images' CLIP tokens takes a last frame
        # (diffusers' WanImageToVideoPipeline; Wan 2.1 I2V fails on one, Wan 2.2 TI2V ignores it),
        # VACE, which keeps any frame its mask says to keep, and LTX's condition pipeline (keyframes).
        flf2v = preset.name.startswith(("wan2.1-flf2v", "tiny-wan2.1-flf2v"))
        assert (LAST in preset.capabilities) == (flf2v or conditioned)
        # references: VACE's reference images; extension: VACE's control video, LTX's condition clip
        assert (REFERENCES in preset.capabilities) == preset.vace
        assert (EXTEND in preset.capabilities) == conditioned
    flf2v = Catalog().resolve("wan2.1-flf2v-14b-720p")
    assert flf2v.requires == {FIRST, LAST} and flf2v.repo == "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"
    # Wan-Video/Wan2.1 generate.py: flf2v samples 50 steps at shift 16, guidance 5.0, 81 frames at 16 fps
    recipe = (flf2v.steps, flf2v.shift, flf2v.guidance, flf2v.frames_for(5), flf2v.fps)
    assert recipe == (50, 16.0, 5.0, 81, 16)
    assert flf2v.size_for("16:9") == (1280, 720) and flf2v.durations == (5,)


def test_vace_presets_follow_wan():
    """Wan-Video/Wan2.1 generate.py: VACE samples 50 steps at shift 16 and guidance 5.0, 81 frames
    at 16 fps; wan/configs: vace-1.3B at 480p (832x480), vace-14B at 720p (1280x720) and 480p.
    Repo ids: diffusers' docs/source/en/api/pipelines/wan.md (Wan-AI's diffusers-format repos)."""
    catalog = Catalog()
    for name, repo, size in (
        ("wan2.1-vace-1.3b", "Wan-AI/Wan2.1-VACE-1.3B-diffusers", (832, 480)),
        ("wan2.1-vace-14b", "Wan-AI/Wan2.1-VACE-14B-diffusers", (1280, 720)),
    ):
        vace = catalog.resolve(name)
        assert vace.repo == repo and vace.size_for("16:9") == size and vace.pipeline == "WanVACEPipeline"
        recipe = (vace.steps, vace.shift, vace.guidance, vace.frames_for(5), vace.fps)
        assert recipe == (50, 16.0, 5.0, 81, 16) and vace.requires == frozenset()
    assert catalog.resolve("wan2.1-vace-1.3b").backbone == catalog.resolve("wan2.1-t2v-1.3b").backbone
    assert catalog.resolve("wan2.1-vace-14b").backbone == catalog.resolve("wan2.1-t2v-14b").backbone


def test_an_extension_is_one_pass_of_the_trained_length():
    """The new seconds and as many of the source's last frames as fill 81 frames (at least 9)."""
    vace = Catalog().resolve("wan2.1-vace-1.3b")
    assert vace.trained_frames == 81 and vace.max_extension_s == 4
    assert vace.extension_frames(4, 160) == (17, 64)
    assert vace.extension_frames(1, 160) == (65, 16)
    assert vace.extension_frames(4, 12) == (9, 64)  # a short source: all of it the pass can take
    for seconds in range(1, vace.max_extension_s + 1):
        for source in (9, 10, 33, 480):
            context, new = vace.extension_frames(seconds, source)
            assert (context + new) % 4 == 1 and context + new <= 81 and 9 <= context <= source
            assert new == seconds * vace.fps
    tiny = Catalog().resolve("tiny-wan2.1-vace")
    assert tiny.max_extension_s == 4 and tiny.extension_frames(3, 41) == (17, 24)


def test_a_protocol_name_routes_by_what_the_request_needs():
    catalog = Catalog(capability_models={LAST: "wan2.1-flf2v-14b-720p"})
    assert catalog.route("veo-2", frozenset({TEXT})).name == "wan2.2-ti2v-5b"
    assert catalog.route("veo-2", frozenset({FIRST})).name == "wan2.2-ti2v-5b"
    assert catalog.route("veo-2", frozenset({FIRST, LAST})).name == "wan2.1-flf2v-14b-720p"
    assert "wan2.1-flf2v-14b-720p" in catalog.routed()  # workers are told to serve it
    # a preset named directly is never swapped for another
    with pytest.raises(MissingCapability) as caught:
        catalog.route("wan2.2-ti2v-5b", frozenset({FIRST, LAST}))
    assert caught.value.capability == LAST and not caught.value.required
    # real models only for a real one
    assert caught.value.serving == [
        "wan2.1-flf2v-14b-720p",
        "wan2.1-vace-1.3b",
        "wan2.1-vace-14b",
        "ltxv-13b-0.9.7-dev",
        "ltxv-13b-0.9.8-distilled",
    ]
    # without a configured model for the capability, the alias's own preset refuses it
    with pytest.raises(MissingCapability):
        Catalog().route("veo-2", frozenset({FIRST, LAST}))
    with pytest.raises(MissingCapability) as caught:
        catalog.route("wan2.1-flf2v-14b-720p", frozenset({FIRST}))
    assert caught.value.capability == LAST and caught.value.required
    with pytest.raises(ValueError, match="cannot do last_frame"):
        Catalog(capability_models={LAST: "wan2.2-ti2v-5b"})


# LTX-Video's condition presets as their publishers give them (no weights needed): (repo, size, fps,
# steps, timesteps, guidance, guidance_rescale, decode_timestep, decode_noise_scale, image_cond_noise_scale)
CITED_LTX = {
    # diffusers docs/source/en/api/pipelines/ltx_video.md, the 0.9.7-dev example's first pass:
    # num_inference_steps=30, guidance_scale=5.0, guidance_rescale=0.7, decode_timestep=0.05,
    # decode_noise_scale=0.025, image_cond_noise_scale=0.0; Lightricks/LTX-Video
    # configs/ltxv-13b-0.9.7-dev.yaml (decode_timestep 0.05, decode_noise_scale 0.025) and
    # ltx_video/inference.py (height 704, width 1216; its frame_rate 30 is not served: 24, the rate
    # diffusers' examples export at, makes every whole second from 4 to 8 an 8k+1 count, catalog.py).
    "ltxv-13b-0.9.7-dev": (
        "Lightricks/LTX-Video-0.9.7-dev", (1216, 704), 24, 30, None, 5.0, 0.7, 0.05, 0.025, 0.0,
    ),
    # the same docs page, the 0.9.8-13B-distilled example: timesteps [1000, 993, 987, 981, 975, 909,
    # 725, 0.03], guidance_scale=1.0; configs/ltxv-13b-0.9.8-distilled.yaml: decode 0.05 and 0.025.
    "ltxv-13b-0.9.8-distilled": (
        "Lightricks/LTX-Video-0.9.8-13B-distilled", (1216, 704), 24, 8,
        (1000, 993, 987, 981, 975, 909, 725, 0.03), 1.0, None, 0.05, 0.025, 0.0,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CITED_LTX))
def test_each_ltx_condition_recipe_is_its_publishers(name):
    from openveo.engine.pipelines import call_arguments

    repo, size, fps, steps, timesteps, guidance, rescale, decode_t, decode_noise, cond_noise = CITED_LTX[name]
    preset = Catalog().resolve(name)
    assert (preset.repo, preset.size_for("16:9"), preset.fps, preset.steps) == (repo, size, fps, steps)
    assert (preset.timesteps, preset.guidance, preset.guidance_rescale) == (timesteps, guidance, rescale)
    assert preset.pipeline == "LTXConditionPipeline" and preset.backbone.dim == 4096  # 13B: 32 x 128
    assert preset.backbone.layers == 48
    # what the pipeline is called with
    args = call_arguments(
        preset, prompt="p", negative_prompt=None, width=1216, height=704, num_frames=121, steps=steps,
        guidance=guidance, guidance_2=None,
    )  # fmt: skip
    assert (args["decode_timestep"], args["decode_noise_scale"]) == (decode_t, decode_noise)
    assert args["image_cond_noise_scale"] == cond_noise and args["frame_rate"] == fps
    assert args.get("timesteps") == (None if timesteps is None else list(timesteps))
    assert args.get("guidance_rescale") == rescale
    assert [preset.frames_for(seconds) for seconds in preset.durations] == [97, 121, 145, 169, 193]

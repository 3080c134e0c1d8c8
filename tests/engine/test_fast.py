"""The fast presets: each recipe against its publisher's (no weights needed), and the tiny fast presets
through the real loading and sampling path, with their transformer passes counted."""

from __future__ import annotations

import io

import numpy as np
import pytest

from openveo.core.catalog import Catalog, Distillation
from openveo.core.request import GenerationRequest, InvalidRequest, Limits, build_request
from openveo.engine.samplers import PinnedTimesteps

LIGHTNING = "lightx2v/Wan2.2-Lightning"
LIGHTNING_T2V = "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1"
LIGHTNING_I2V = "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1"
LIGHTX2V_T2V = "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"
LIGHTX2V_I2V = "wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors"

# What each publisher gives, written here with its source (docs/fast-presets.md has the details):
#   (repo, size, fps, steps, timesteps the model sees, DMD re-noising, guidance, distillation LoRAs)
CITED = {
    # FastVideo/FastWan-QAD-1.3B model card ("3-step", "832x480, 81 frames", "No classifier-free
    # guidance"); FastVideo examples/train/scenario/qad_wan2_1_mixkit/stage2_attn_qat_dmd.yaml
    # (dmd_denoising_steps [1000, 757, 522]); fastvideo/pipelines/stages/denoising.py DmdDenoisingStage.
    "wan2.1-t2v-1.3b-fast": (
        "FastVideo/FastWan-QAD-1.3B", (832, 480), 16, 3, [1000, 757, 522], True, 1.0, (),
    ),
    # FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers card ("3-step", 121x704x1280); FastVideo
    # fastvideo/configs/pipelines/wan.py FastWan2_2_TI2V_5B_Config (dmd_denoising_steps [1000, 757, 522]).
    "wan2.2-ti2v-5b-fast": (
        "FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers", (1280, 704), 24, 3, [1000, 757, 522], True, 1.0,
        (),
    ),
    # ModelTC/LightX2V configs/distill/wan21/wan_t2v_distill_lora_4step_cfg.json: 832x480, infer_steps 4,
    # denoising_step_list [1000, 750, 500, 250], sample_shift 5, enable_cfg false, the rank-64 LoRA of
    # lightx2v/Wan2.1-Distill-Loras; WanStepDistillScheduler: sigmas 1.0, 0.9375, 0.8333, 0.625.
    "wan2.1-t2v-14b-fast": (
        "Wan-AI/Wan2.1-T2V-14B-Diffusers", (832, 480), 16, 4, [1000, 937.5, 833.333, 625], False, 1.0,
        (Distillation("lightx2v/Wan2.1-Distill-Loras", LIGHTX2V_T2V, 64),),
    ),
    # ModelTC/Wan2.2-Lightning wan/configs/wan_t2v_A14B.py: sample_shift 5.0, sample_steps 4, boundary 0.875,
    # sample_guide_scale (1.0, 1.0); README: the Seko-V1.1 folder's high_noise_model / low_noise_model;
    # the maintainers' training timesteps [1000.0000, 937.5001, 833.3333, 625.0000]
    # (ModelTC/LightX2V-Wan2.2-Lightning issue 3).
    "wan2.2-t2v-a14b-fast": (
        "Wan-AI/Wan2.2-T2V-A14B-Diffusers", (1280, 720), 16, 4, [1000, 937.5, 833.333, 625], False, 1.0,
        (
            Distillation(LIGHTNING, f"{LIGHTNING_T2V}/high_noise_model.safetensors", 64, "transformer"),
            Distillation(LIGHTNING, f"{LIGHTNING_T2V}/low_noise_model.safetensors", 64, "transformer_2"),
        ),
    ),
    # ModelTC/LightX2V configs/distill/wan21/wan_i2v_distill_lora_4step_cfg.json: 832x480, 81 frames,
    # infer_steps 4, the same step list and shift 5, enable_cfg false; the i2v rank-64 LoRA.
    "wan2.1-i2v-14b-480p-fast": (
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", (832, 480), 16, 4, [1000, 937.5, 833.333, 625], False, 1.0,
        (Distillation("lightx2v/Wan2.1-Distill-Loras", LIGHTX2V_I2V, 64),),
    ),
    # ModelTC/Wan2.2-Lightning wan/configs/wan_i2v_A14B.py: sample_shift 5.0, sample_steps 4, boundary 0.900,
    # guidance (1.0, 1.0); README: the I2V Seko-V1 folder's high_noise_model / low_noise_model.
    "wan2.2-i2v-a14b-fast": (
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers", (1280, 720), 16, 4, [1000, 937.5, 833.333, 625], False, 1.0,
        (
            Distillation(LIGHTNING, f"{LIGHTNING_I2V}/high_noise_model.safetensors", 64, "transformer"),
            Distillation(LIGHTNING, f"{LIGHTNING_I2V}/low_noise_model.safetensors", 64, "transformer_2"),
        ),
    ),
}  # fmt: skip

# The base presets the image-to-video fast ones start from: (steps, guidance, guidance_2, shift, boundary).
CITED_BASES = {
    # Wan-Video/Wan2.1 generate.py: i2v sample_steps 40, sample_guide_scale 5.0, sample_shift 3.0 at 480p.
    "wan2.1-i2v-14b-480p": (40, 5.0, None, 3.0, None),
    # Wan-Video/Wan2.2 wan/configs/wan_i2v_A14B.py: sample_steps 40, sample_guide_scale (3.5, 3.5),
    # sample_shift 5.0, boundary 0.900; wan_t2v_A14B.py: 40, (3.0 low, 4.0 high), 12.0, 0.875.
    "wan2.2-i2v-a14b": (40, 3.5, 3.5, 5.0, 0.9),
    "wan2.2-t2v-a14b": (40, 4.0, 3.0, 12.0, 0.875),
}


@pytest.mark.parametrize("name", sorted(CITED))
def test_each_fast_recipe_is_its_publishers(name):
    repo, size, fps, steps, timesteps, renoise, guidance, distillation = CITED[name]
    preset = Catalog().resolve(name)
    assert (preset.repo, preset.size_for("16:9"), preset.fps, preset.steps) == (repo, size, fps, steps)
    assert (preset.renoise, preset.guidance, preset.distillation) == (renoise, guidance, distillation)
    assert preset.guidance_2 in (None, 1.0)  # both experts without guidance: one pass a step
    assert preset.frames_for(5) == 81 if fps == 16 else preset.frames_for(5) == 121
    scheduler = PinnedTimesteps(preset.timesteps, preset.shift, preset.renoise)
    scheduler.set_timesteps(preset.steps)
    assert scheduler.timesteps.tolist() == pytest.approx(timesteps, abs=1e-3)
    assert scheduler.sigmas[-1] == 0 and bool(scheduler.config.stochastic_sampling) == renoise
    base = Catalog().resolve(preset.base)
    assert base.backbone == preset.backbone  # the base's LoRAs fit the fast preset too


@pytest.mark.parametrize("name", sorted(CITED_BASES))
def test_each_base_recipe_is_its_publishers(name):
    steps, guidance, guidance_2, shift, boundary = CITED_BASES[name]
    preset = Catalog().resolve(name)
    assert (preset.steps, preset.guidance, preset.guidance_2) == (steps, guidance, guidance_2)
    assert (preset.shift, preset.boundary) == (shift, boundary)


@pytest.mark.parametrize(
    ("name", "boundary"), [("wan2.2-t2v-a14b-fast", 0.875), ("wan2.2-i2v-a14b-fast", 0.9)]
)
def test_the_lightning_pair_splits_the_four_steps_between_the_experts(name, boundary):
    """Wan 2.2 A14B runs `transformer` while t >= boundary x 1000 (0.875 for T2V, 0.900 for I2V: Wan-AI's
    model_index and Lightning's configs), so its high-noise LoRA sees two steps and the low one two."""
    preset = Catalog().resolve(name)
    assert preset.boundary == boundary
    scheduler = PinnedTimesteps(preset.timesteps, preset.shift, preset.renoise)
    scheduler.set_timesteps(preset.steps)
    high = [t for t in scheduler.timesteps.tolist() if t >= boundary * 1000]
    assert len(high) == 2 and [d.into for d in preset.distillation] == ["transformer", "transformer_2"]


def test_an_image_to_video_only_model_asks_for_its_image():
    catalog = Catalog()
    with pytest.raises(
        InvalidRequest, match=r"image.*is required: tiny-wan2\.1-i2v-fast makes video from an image"
    ):
        build_request({"prompt": "x", "model": "tiny-wan2.1-i2v-fast"}, catalog, Limits())
    request = build_request(
        {"prompt": "x", "model": "tiny-wan2.1-i2v-fast", "image": png()}, catalog, Limits()
    )
    assert request.image is not None and not catalog.resolve("wan2.2-i2v-a14b").supports_text


def test_a_fast_preset_takes_only_its_own_step_count():
    catalog = Catalog()
    with pytest.raises(InvalidRequest, match=r"must be 4: tiny-wan2\.2-fast samples at fixed timesteps"):
        build_request({"prompt": "x", "model": "tiny-wan2.2-fast", "steps": 8}, catalog, Limits())
    assert (
        build_request({"prompt": "x", "model": "tiny-wan2.2-fast", "steps": 4}, catalog, Limits()).steps == 4
    )


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 255, (72, 120, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def count_passes(engine, model: str, **request):
    """Generate once, counting the transformers' forward calls and the batch each one runs
    (a two-expert model's passes are tagged by expert: 1 for `transformer`, 2 for `transformer_2`)."""
    loaded = engine.load(model)
    batches: list[int] = []
    experts: list[int] = []

    def counted(expert):
        def hook(_module, _args, kwargs):
            batches.append(kwargs["hidden_states"].shape[0])
            experts.append(expert)

        return hook

    hooks = [
        denoiser.register_forward_pre_hook(counted(index + 1), with_kwargs=True)
        for index, denoiser in enumerate(loaded.denoisers)
    ]
    if loaded.preset.needs_image:
        request.setdefault("image", png())
    count_passes.experts = experts
    try:
        generation = engine.generate(
            GenerationRequest(prompt="a lighthouse", model=model, seed=11, **request)
        )
    finally:
        for hook in hooks:
            hook.remove()
    return generation, batches


TINY_FAST = [
    ("tiny-wan2.1-fast", 3),
    ("tiny-wan2.2-fast", 4),
    ("tiny-wan2.1-i2v-fast", 4),
    ("tiny-wan2.2-a14b-fast", 4),
]


@pytest.mark.parametrize(("model", "steps"), TINY_FAST)
def test_tiny_fast_presets_make_their_videos_in_one_pass_a_step(engine, model, steps):
    generation, batches = count_passes(engine, model, duration_s=6)
    assert batches == [1] * steps  # no unconditional pass: guidance 1
    assert generation.num_frames == 49 and generation.videos[0].shape == (
        49,
        96,
        160,
        3,
    )  # 6 s at 8 fps, 4k+1
    again, _ = count_passes(engine, model, duration_s=6)
    assert np.array_equal(again.videos[0], generation.videos[0])  # the re-noising is seeded too
    base, base_batches = count_passes(engine, model.removesuffix("-fast"), duration_s=6)
    assert len(base_batches) * max(base_batches) == 2 * base.steps  # the base model: two passes a step
    assert not np.array_equal(base.videos[0], generation.videos[0])


def test_the_two_experts_take_two_steps_each(engine):
    """Pinned at 1000, 937.5, 833.3, 625 with the boundary at 875: the high-noise expert (with its
    fused LoRA) runs the first two passes, the low-noise one the last two."""
    count_passes(engine, "tiny-wan2.2-a14b-fast")
    assert count_passes.experts == [1, 1, 2, 2]
    count_passes(engine, "tiny-wan2.2-a14b")  # the base, stock UniPC at 4 steps and shift 12
    assert set(count_passes.experts) == {1, 2}


def test_an_image_only_preset_loads_one_pipeline(engine):
    loaded = engine.load("tiny-wan2.1-i2v-fast")
    assert loaded.image_to_video is loaded.pipe and type(loaded.pipe).__name__ == "WanImageToVideoPipeline"


def test_the_distillation_lora_is_fused_into_the_weights(engine):
    import torch

    fast = engine.load("tiny-wan2.2-fast").pipe.transformer
    base = engine.load("tiny-wan2.2").pipe.transformer
    assert not hasattr(fast, "peft_config")  # fused, then its PEFT layers removed: free at run time
    assert isinstance(fast.blocks[0].attn1.to_q, torch.nn.Linear)
    assert not torch.equal(fast.blocks[0].attn1.to_q.weight, base.blocks[0].attn1.to_q.weight)
    assert torch.equal(fast.blocks[0].norm2.weight, base.blocks[0].norm2.weight)  # only the LoRA's layers


def test_the_low_noise_lora_goes_into_transformer_2(engine):
    import torch

    fast, base = engine.load("tiny-wan2.2-a14b-fast").pipe, engine.load("tiny-wan2.2-a14b").pipe
    for expert in ("transformer", "transformer_2"):
        ours, theirs = getattr(fast, expert), getattr(base, expert)
        assert not hasattr(ours, "peft_config")
        assert not torch.equal(ours.blocks[1].ffn.net[2].weight, theirs.blocks[1].ffn.net[2].weight)
    # each expert got its own file: the two fused deltas differ (rank 8 on one, rank 4 on the other)
    high = fast.transformer.blocks[0].attn1.to_q.weight - base.transformer.blocks[0].attn1.to_q.weight
    low = fast.transformer_2.blocks[0].attn1.to_q.weight - base.transformer_2.blocks[0].attn1.to_q.weight
    assert torch.linalg.matrix_rank(high) == 8 and torch.linalg.matrix_rank(low) == 4


def test_googles_fast_ids_run_the_configured_fast_preset():
    assert Catalog(fast_model="wan2.2-ti2v-5b-fast").resolve("veo-3.1-fast-generate-001").name == (
        "wan2.2-ti2v-5b-fast"
    )
    assert Catalog(default_model="tiny").resolve("veo-3.0-fast-generate-001").name == "tiny-wan2.2"
    # Segmind's fast slug:
    assert Catalog(fast_model="tiny-wan2.2-fast").resolve("veo-3.1-fast").name == "tiny-wan2.2-fast"
    with pytest.raises(ValueError, match="unknown model"):
        Catalog(fast_model="no-such-preset")


@pytest.mark.parametrize(("model", "encodings"), [("tiny-wan2.2-fast", 1), ("tiny-wan2.2", 2)])
def test_an_unguided_preset_never_encodes_the_negative_prompt(engine, model, encodings):
    """Guidance 1 runs no unconditional pass, so the negative prompt's text-encoder pass is skipped."""
    encoder = engine.load(model).pipe.text_encoder
    calls: list[int] = []
    hook = encoder.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        engine.generate(
            GenerationRequest(
                prompt=f"a kite over {model}", negative_prompt=f"fog near {model}", model=model, seed=2
            ),
            decode=False,
        )
    finally:
        hook.remove()
    assert len(calls) == encodings

"""The fast presets: each recipe against its publisher's (no weights needed), and the tiny fast presets
through the real loading and sampling path, with their transformer passes counted."""

from __future__ import annotations

import numpy as np
import pytest

from openveo.core.catalog import Catalog, Distillation
from openveo.core.request import GenerationRequest, InvalidRequest, Limits, build_request
from openveo.engine.samplers import PinnedTimesteps

LIGHTNING = "lightx2v/Wan2.2-Lightning"
LIGHTNING_T2V = "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1"
LIGHTX2V_T2V = "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors"

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
}  # fmt: skip


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


def test_the_lightning_pair_splits_the_four_steps_between_the_experts():
    """Wan 2.2 A14B runs `transformer` while t >= boundary x 1000 (0.875 for T2V, Wan-AI's
    model_index and Lightning's config), so its high-noise LoRA sees two steps and the low one two."""
    preset = Catalog().resolve("wan2.2-t2v-a14b-fast")
    scheduler = PinnedTimesteps(preset.timesteps, preset.shift, preset.renoise)
    scheduler.set_timesteps(preset.steps)
    high = [t for t in scheduler.timesteps.tolist() if t >= 0.875 * 1000]
    assert len(high) == 2 and [d.into for d in preset.distillation] == ["transformer", "transformer_2"]


def test_a_fast_preset_takes_only_its_own_step_count():
    catalog = Catalog()
    with pytest.raises(InvalidRequest, match=r"must be 4: tiny-wan2\.2-fast samples at fixed timesteps"):
        build_request({"prompt": "x", "model": "tiny-wan2.2-fast", "steps": 8}, catalog, Limits())
    assert (
        build_request({"prompt": "x", "model": "tiny-wan2.2-fast", "steps": 4}, catalog, Limits()).steps == 4
    )


def count_passes(engine, model: str, **request):
    """Generate once, counting the transformer's forward calls and the batch each one runs."""
    loaded = engine.load(model)
    batches: list[int] = []
    hooks = [
        denoiser.register_forward_pre_hook(
            lambda _m, _args, kwargs: batches.append(kwargs["hidden_states"].shape[0]), with_kwargs=True
        )
        for denoiser in loaded.denoisers
    ]
    try:
        generation = engine.generate(
            GenerationRequest(prompt="a lighthouse", model=model, seed=11, **request)
        )
    finally:
        for hook in hooks:
            hook.remove()
    return generation, batches


@pytest.mark.parametrize(("model", "steps"), [("tiny-wan2.1-fast", 3), ("tiny-wan2.2-fast", 4)])
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


def test_the_distillation_lora_is_fused_into_the_weights(engine):
    import torch

    fast = engine.load("tiny-wan2.2-fast").text_to_video.transformer
    base = engine.load("tiny-wan2.2").text_to_video.transformer
    assert not hasattr(fast, "peft_config")  # fused, then its PEFT layers removed: free at run time
    assert isinstance(fast.blocks[0].attn1.to_q, torch.nn.Linear)
    assert not torch.equal(fast.blocks[0].attn1.to_q.weight, base.blocks[0].attn1.to_q.weight)
    assert torch.equal(fast.blocks[0].norm2.weight, base.blocks[0].norm2.weight)  # only the LoRA's layers


def test_googles_fast_ids_run_the_configured_fast_preset():
    assert Catalog(fast_model="wan2.2-ti2v-5b-fast").resolve("veo-3.1-fast-generate-001").name == (
        "wan2.2-ti2v-5b-fast"
    )
    assert Catalog(default_model="tiny").resolve("veo-3.0-fast-generate-001").name == "tiny-wan2.2"
    with pytest.raises(ValueError, match="unknown model"):
        Catalog(fast_model="no-such-preset")

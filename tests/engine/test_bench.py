"""The engine benchmark's networks and cases: each fast preset's architecture is built at full size
with the publishers' layout, and the image-to-video and two-expert layouts run through the same
baseline-against-openveo path as the others (on their tiny builds here; full size wants a GPU)."""

from __future__ import annotations

import pytest
import torch

from openveo.bench.engine import (
    ARCHITECTURES,
    FAST_PRESETS,
    TINY,
    Case,
    build_pipeline,
    case_for,
    run_case,
)
from openveo.core.catalog import Catalog

BILLION = 1e9


def test_every_fast_preset_has_an_architecture_to_bench():
    # the few-step presets on their base's network (LTX 0.9.8 distilled has weights of its own)
    fast = {p.name for p in Catalog().presets.values() if p.timesteps is not None and p.base is not None}
    assert fast == set(FAST_PRESETS.values())
    assert set(FAST_PRESETS) == {*ARCHITECTURES, *TINY}
    for arch, name in FAST_PRESETS.items():
        assert Catalog().resolve(name).base == arch  # the fast preset runs on this very network


# Parameters per transformer, from the names the publishers give them (Wan 2.1 "1.3B" and "14B",
# Wan 2.2 "TI2V-5B" and "A14B": two 14B experts). The I2V 14B adds a key and a value projection of the
# CLIP features to every block (40 x 2 x 5120^2, 2.1B) on top of the T2V 14B layout.
PARAMETERS = {
    "wan2.1-t2v-1.3b": (1.2, 1.5),
    "wan2.2-ti2v-5b": (4.8, 5.2),
    "wan2.1-t2v-14b": (13.8, 14.6),
    "wan2.2-t2v-a14b": (13.8, 14.6),
    "wan2.1-i2v-14b-480p": (16.0, 16.8),
    "wan2.2-i2v-a14b": (13.8, 14.6),
}


def _count(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / BILLION


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_full_size_architectures_have_the_published_layouts(arch):
    """Built on the meta device (shapes without memory): the pipeline class, experts, image encoder
    and sizes are the catalog preset's, and each transformer has its published size."""
    preset = Catalog().resolve(arch)
    pipe = build_pipeline(arch, torch.device("meta"), torch.bfloat16)
    assert type(pipe).__name__ == preset.pipeline
    experts = [pipe.transformer] + ([pipe.transformer_2] if pipe.transformer_2 is not None else [])
    assert len(experts) == (2 if preset.boundary else 1)
    low, high = PARAMETERS[arch]
    for expert in experts:
        assert low <= _count(expert) <= high, (arch, _count(expert))
        assert expert.config.num_layers == preset.backbone.layers
        assert expert.config.num_attention_heads * expert.config.attention_head_dim == preset.backbone.dim
    if preset.boundary:
        assert pipe.config.boundary_ratio == preset.boundary
    latent = pipe.vae.config.z_dim
    config = pipe.transformer.config
    if preset.needs_image:  # noise, the first frame's latents and a 4-channel frame mask
        assert (config.in_channels, config.out_channels) == (2 * latent + 4, latent)
    else:
        assert config.in_channels == config.out_channels == latent
    encoder = getattr(pipe, "image_encoder", None)
    if config.image_dim:  # Wan 2.1 I2V: CLIP ViT-H/14 features into every block's cross-attention
        assert encoder is not None and encoder.config.hidden_size == config.image_dim
        assert 0.6 <= _count(encoder) <= 0.66  # ViT-H/14's 632M vision tower
    else:
        assert encoder is None
    assert pipe.text_encoder.config.d_model == config.text_dim == 4096  # umT5-XXL
    assert 5.5 <= _count(pipe.text_encoder) <= 5.8
    case = case_for(arch)
    assert (case.width, case.height) == preset.size_for("16:9")
    assert (case.frames, case.steps, case.guidance, case.guidance_2) == (
        preset.frames_for(5), preset.steps, preset.guidance, preset.guidance_2,
    )  # fmt: skip


@pytest.mark.slow  # two tiny networks through every run of the bench (a minute on 2 cores)
@pytest.mark.parametrize("arch", ["tiny-wan2.1-i2v", "tiny-wan2.2-a14b"])
def test_image_and_two_expert_layouts_bench_like_the_others(settings, arch):
    """The first frame reaches the baseline and openveo alike (their frames agree), both experts'
    passes are counted, and the fast recipe runs 4 unguided steps."""
    preset = Catalog().resolve(arch)
    # 5 s (the bench's duration) at 2 fps: 9 frames, 3 latent frames; quick on a CPU
    case = Case(arch, 160, 96, 9, 2, steps=3, guidance=preset.guidance, guidance_2=preset.guidance_2)
    runs, vae = run_case(case, settings, ("fast", "fast+lora"))
    by_mode = {run.mode: run for run in runs}
    assert list(by_mode) == ["baseline", "openveo", "fast", "fast+lora"]
    assert [by_mode[m].passes for m in by_mode] == [6, 6, 4, 4]
    assert by_mode["openveo"].psnr_db is not None and by_mode["openveo"].psnr_db >= 45
    assert all(run.seconds["denoising"] > 0 for run in runs)
    assert [v.dtype for v in vae] == ["fp32", "bf16"]

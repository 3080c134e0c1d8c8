"""Tiny random-weight pipelines of the real architectures, built fully offline.

They exist so that the test-suite and an offline quick start exercise the real code path —
real diffusers classes, `save_pretrained`, then `from_pretrained` like any downloaded model —
in seconds on a CPU. Their weights are random: the videos are abstract noise, never a real model.
"""

from __future__ import annotations

import os
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

BUILD_SEED = 0  # fixed, so every machine builds the same tiny weights
TEXT_DIM = 32
MAX_TEXT_TOKENS = 64


def build_tokenizer():
    """A small SentencePiece-style (Unigram) T5 tokenizer built from a vocabulary in code: no hub access."""
    from transformers import T5Tokenizer

    specials = ["<pad>", "</s>", "<unk>", "▁"]
    pieces = [
        *("▁" + c for c in string.ascii_lowercase),
        *string.ascii_letters,
        *string.digits,
        *string.punctuation,
    ]
    vocab = [(p, 0.0) for p in specials[:3]] + [
        (p, -float(i + 1)) for i, p in enumerate([specials[3], *pieces])
    ]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _text_encoder(kind: str, vocab_size: int):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    sizes: dict[str, Any] = dict(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    if kind == "umt5":
        return UMT5EncoderModel(UMT5Config(**sizes))
    return T5EncoderModel(T5Config(**sizes))


def _wan(version: str):
    """The Wan layouts: "2.1" (T2V, 16-channel latents, 8x VAE), "2.2" (TI2V-5B: 48 channels, 16x VAE,
    per-token timesteps), "2.1-i2v" (the first frame's latents and a mask beside the noise, 36 channels
    in, and CLIP image features through extra cross-attention keys), "2.2-a14b" (the 2.1 layout with a
    high-noise and a low-noise expert, switching at t = 875, as Wan2.2-T2V-A14B does), "2.1-flf2v" (the
    I2V layout taking a first and a last frame: the CLIP features of both, with learned positions for
    the pair, as Wan2.1-FLF2V-14B has for its 2 x 257 image tokens), "2.1-vace" (the 2.1 layout with
    VACE control blocks beside blocks 0 and 1, reading 96 control channels: the kept and the made parts
    of the control video's latents, 2 x 16, and its mask folded 8 x 8, 64, as Wan2.1-VACE has)."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanPipeline,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )

    tokenizer = build_tokenizer()
    if version == "2.2":
        vae = AutoencoderKLWan(
            base_dim=12,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            temperal_downsample=[False, True, True],
        )
        channels, shift, expand = 48, 5.0, True
    else:
        vae = AutoencoderKLWan(
            base_dim=12,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
        channels, shift, expand = 16, {"2.2-a14b": 12.0, "2.1-vace": 16.0}.get(version, 3.0), False
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift
    )
    # Built in this order (VAE, transformers, text encoder, image encoder) so that the seed gives
    # every layout the weights it has always had.
    pipeline_cls: Any = WanPipeline
    parts: dict[str, Any] = dict(vae=vae, scheduler=scheduler)
    image_conditioned = version in ("2.1-i2v", "2.1-flf2v")
    if image_conditioned:
        pipeline_cls = WanImageToVideoPipeline
        pair = 2 * _CLIP_TOKENS if version == "2.1-flf2v" else None
        parts["transformer"] = _wan_transformer(36, 16, image_dim=16, pos_embed_seq_len=pair)
    elif version == "2.1-vace":
        pipeline_cls = WanVACEPipeline
        parts["transformer"] = _wan_transformer(
            channels, channels, model=WanVACETransformer3DModel, vace_layers=[0, 1], vace_in_channels=96
        )
    elif version == "2.2-a14b":
        parts["transformer"] = _wan_transformer(channels, channels)
        parts["transformer_2"] = _wan_transformer(channels, channels)
        parts["boundary_ratio"] = 0.875
    else:
        parts["transformer"] = _wan_transformer(channels, channels)
        parts["expand_timesteps"] = expand
    parts |= dict(tokenizer=tokenizer, text_encoder=_text_encoder("umt5", len(tokenizer)))
    if image_conditioned:
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        clip = CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            projection_dim=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=_CLIP_SIZE,
            patch_size=_CLIP_PATCH,
        )
        parts |= dict(
            image_encoder=CLIPVisionModel(clip),
            image_processor=CLIPImageProcessor(crop_size=_CLIP_SIZE, size=_CLIP_SIZE),
        )
    return pipeline_cls(**parts)


_CLIP_SIZE, _CLIP_PATCH = 32, 8
_CLIP_TOKENS = (_CLIP_SIZE // _CLIP_PATCH) ** 2 + 1  # patches and the class token, per image


def _wan_transformer(
    in_channels: int,
    out_channels: int,
    image_dim: int | None = None,
    pos_embed_seq_len: int | None = None,
    model: Any = None,
    **extra: Any,
):
    from diffusers import WanTransformer3DModel

    heads, head_dim = 2, 12
    return (model or WanTransformer3DModel)(
        patch_size=(1, 2, 2),
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=64,
        image_dim=image_dim,
        added_kv_proj_dim=heads * head_dim if image_dim else None,
        pos_embed_seq_len=pos_embed_seq_len,
        **extra,
    )


def _ltx(condition: bool = False):
    """LTX-Video's layouts: 0.9.0's (`LTXPipeline`), or with `condition` 0.9.5's and later
    (`LTXConditionPipeline`): a new encoder (spatial, temporal, then two spatiotemporal
    downsamplings) and a decoder that takes the decode timestep, as diffusers' conversion script
    builds them for 0.9.5 and 0.9.7."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    tokenizer = build_tokenizer()
    # Same compression as the real VAE: 8x in time, 32x in space.
    if condition:
        vae = AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8, 8),
            down_block_types=("LTXVideo095DownBlock3D",) * 4,
            downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            decoder_block_out_channels=(8, 16, 32),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True, True),
            decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(False,) * 4,
            upsample_residual=(True,) * 3,
            upsample_factor=(2,) * 3,
            timestep_conditioning=True,
            patch_size=4,
            patch_size_t=1,
            spatial_compression_ratio=32,
            temporal_compression_ratio=8,
        )
    else:  # 3 scaling stages x patch size 4
        vae = AutoencoderKLLTXVideo(
            latent_channels=8,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, True, False),
            decoder_spatio_temporal_scaling=(True, True, True, False),
            decoder_inject_noise=(False,) * 5,
            upsample_residual=(False,) * 4,
            upsample_factor=(1,) * 4,
            patch_size=4,
            patch_size_t=1,
        )
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=TEXT_DIM,
        num_layers=1,
        caption_channels=TEXT_DIM,
    )
    pipeline_cls: Any = LTXConditionPipeline if condition else LTXPipeline
    return pipeline_cls(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=_text_encoder("t5", len(tokenizer)),
        tokenizer=tokenizer,
        transformer=transformer,
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "wan2.1": lambda: _wan("2.1"),
    "wan2.2": lambda: _wan("2.2"),
    "wan2.1-i2v": lambda: _wan("2.1-i2v"),
    "wan2.2-a14b": lambda: _wan("2.2-a14b"),
    "wan2.1-flf2v": lambda: _wan("2.1-flf2v"),
    "wan2.1-vace": lambda: _wan("2.1-vace"),
    "ltx": _ltx,
    "ltx-condition": lambda: _ltx(condition=True),
}


def ensure_tiny(arch: str, target: Path) -> Path:
    """Build and save the tiny pipeline at `target` unless it is already there.

    Built in a temporary sibling folder and renamed into place, so a crash or a concurrent
    builder never leaves a half-saved model behind.
    """
    if (target / "model_index.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(BUILD_SEED)
            pipeline = BUILDERS[arch]()
        pipeline.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is identical
            if not (target / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# Wan's own layer names (the original checkpoints, LightX2V's and most trainers' LoRAs) for diffusers'.
_WAN_ORIGINAL_NAMES = (
    ("attn1.to_out.0", "self_attn.o"),
    ("attn2.to_out.0", "cross_attn.o"),
    ("attn2.add_k_proj", "cross_attn.k_img"),  # image-to-video: the CLIP features' keys and values
    ("attn2.add_v_proj", "cross_attn.v_img"),
    ("attn1.to_", "self_attn."),
    ("attn2.to_", "cross_attn."),
    ("ffn.net.0.proj", "ffn.0"),
    ("ffn.net.2", "ffn.2"),
)


def random_lora(
    transformer: torch.nn.Module, rank: int, *, seed: int = 0, key_format: str = "diffusers", std: float = 0.2
) -> dict[str, torch.Tensor]:
    """A random LoRA of `rank` on every linear layer of the transformer's blocks, in diffusers' key
    format or in the publishers' ("original": `diffusion_model.blocks.0.self_attn.q.lora_down.weight`).
    Both A and B are random (a trained adapter's B is not zero), so it visibly changes the output."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear) or not name.startswith(("blocks.", "transformer_blocks.")):
            continue
        if ".lora_" in name:  # a LoRA already in the transformer (a compiled worker's slot)
            continue
        name = name.removesuffix(".base_layer")
        down = torch.randn(rank, module.in_features, generator=generator) * std
        up = torch.randn(module.out_features, rank, generator=generator) * std
        if key_format == "diffusers":
            state[f"transformer.{name}.lora_A.weight"] = down
            state[f"transformer.{name}.lora_B.weight"] = up
        elif key_format == "original":
            for ours, theirs in _WAN_ORIGINAL_NAMES:
                name = name.replace(ours, theirs)
            state[f"diffusion_model.{name}.lora_down.weight"] = down
            state[f"diffusion_model.{name}.lora_up.weight"] = up
        else:
            raise ValueError(f"unknown LoRA key format {key_format!r}")
    return state


def save_lora(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Written beside `path` and renamed into place: a reader never finds half a file."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(handle)
    try:
        save_file({key: tensor.contiguous() for key, tensor in state.items()}, staging)
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)
    return path

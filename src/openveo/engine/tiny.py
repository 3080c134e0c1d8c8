"""Tiny random-weight pipelines of the real architectures, built fully offline.

They exist so that the test-suite and an offline quick start exercise the real code path —
real diffusers classes, `save_pretrained`, then `from_pretrained` like any downloaded model —
in seconds on a CPU. Their weights are random: the videos are abstract noise, never a real model.
"""

from __future__ import annotations

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
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    tokenizer = build_tokenizer()
    if (
        version == "2.2"
    ):  # TI2V-5B layout: 48-channel latents, 16x spatial VAE (patchified), per-token timesteps
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
    else:  # 2.1 layout: 16-channel latents, 8x spatial VAE
        vae = AutoencoderKLWan(
            base_dim=12,
            z_dim=16,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
        )
        channels, shift, expand = 16, 3.0, False
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=channels,
        out_channels=channels,
        text_dim=TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=64,
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift
    )
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=_text_encoder("umt5", len(tokenizer)),
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
        expand_timesteps=expand,
    )


def _ltx():
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    tokenizer = build_tokenizer()
    # Same compression as the real VAE: 8x in time, 32x in space (3 scaling stages x patch size 4).
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
    return LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=_text_encoder("t5", len(tokenizer)),
        tokenizer=tokenizer,
        transformer=transformer,
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "wan2.1": lambda: _wan("2.1"),
    "wan2.2": lambda: _wan("2.2"),
    "ltx": _ltx,
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

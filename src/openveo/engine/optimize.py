"""Speed-ups applied to a loaded pipeline's modules.

Exact-output ones (attention backend, regional compile, VAE tiling as an out-of-memory fallback,
offload) change how the same numbers are computed; opt-in ones (fp8, step caching) trade quality for
speed and are off unless asked for. docs/performance.md has the measured gain of each.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from typing import Any

import torch

from openveo.core.modes import StepCache

log = logging.getLogger(__name__)

RECOMPILE_LIMIT = 64  # one compiled graph per served shape (aspect ratios x durations x CFG batch)


class UnsupportedMode(RuntimeError):
    """A speed setting this machine cannot run (fp8 without an fp8 GPU, offload without a GPU...)."""


def pick_attention(setting: str, device: torch.device) -> str | None:
    """The attention backend to use; None leaves diffusers' default (PyTorch SDPA) alone.

    'auto' on CUDA: FlashAttention 3 on Hopper when installed, then FlashAttention 2, then cuDNN's
    fused attention on Hopper and newer (faster than SDPA's default flash kernel there), else SDPA."""
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    if major == 9 and importlib.util.find_spec("flash_attn_interface"):
        return "_flash_3"
    if importlib.util.find_spec("flash_attn"):
        return "flash"
    return "_native_cudnn" if major >= 9 else None


def set_attention(denoisers: list[Any], backend: str | None) -> None:
    if backend is None:
        return
    for denoiser in denoisers:
        denoiser.set_attention_backend(backend)
    log.info("attention backend: %s", backend)


def place(pipe: Any, device: torch.device, offload: str) -> None:
    """Move the pipeline to its device, or set up CPU offload for GPUs too small to hold it.

    model: whole components move to the GPU when used (small cost, saves the idle components' memory);
    group: transformer blocks stream in on a side CUDA stream, overlapped with compute;
    sequential: every layer moves when used (slowest, least memory)."""
    if offload == "none":
        pipe.to(device)
        return
    if device.type != "cuda":
        raise UnsupportedMode(f"offload={offload} needs a CUDA GPU; this worker runs on {device}")
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    elif offload == "group":
        pipe.enable_group_offload(
            onload_device=device,
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=True,
        )
    else:
        raise UnsupportedMode(f"unknown offload mode {offload!r}")
    log.info("CPU offload: %s", offload)


def quantize_fp8(denoisers: list[Any], device: torch.device, offload: str = "none") -> None:
    """fp8 weights and per-row dynamic fp8 activations in the transformer's linear layers (torchao),
    quantized where they live: on the GPU. Needs an fp8 GPU (compute capability 8.9+: Ada, Hopper,
    Blackwell)."""
    if device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9):
        raise UnsupportedMode(
            "quantize=fp8 needs a CUDA GPU with fp8 support (compute capability 8.9 or newer)"
        )
    if offload != "none":
        raise UnsupportedMode(
            "quantize=fp8 cannot be combined with CPU offload yet; fp8 already halves the weights"
        )
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError as exc:
        raise UnsupportedMode("quantize=fp8 needs torchao: pip install 'openveo[fp8]'") from exc
    config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    for denoiser in denoisers:
        # Only the big matmuls inside the repeated blocks: embeddings and the output head stay bf16.
        quantize_(denoiser, config, filter_fn=_in_blocks)
    log.info("fp8 quantization: transformer block linears")


def _in_blocks(module: torch.nn.Module, name: str) -> bool:
    return isinstance(module, torch.nn.Linear) and name.startswith(("blocks.", "transformer_blocks."))


def enable_step_cache(denoisers: list[Any], cache: StepCache | None) -> None:
    if cache is None:
        return
    from diffusers import FirstBlockCacheConfig, TaylorSeerCacheConfig

    for denoiser in denoisers:
        if cache.kind == "first-block":
            denoiser.enable_cache(FirstBlockCacheConfig(threshold=cache.value))
        else:
            denoiser.enable_cache(
                TaylorSeerCacheConfig(cache_interval=int(cache.value), taylor_factors_dtype=denoiser.dtype)
            )
    log.info("step cache: %s %s", cache.kind, cache.value)


def compile_blocks(denoisers: list[Any]) -> None:
    """Regional compile: the repeated block class is compiled once and reused by all 30-40 blocks,
    so start-up costs seconds per shape rather than minutes for the whole network."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for denoiser in denoisers:
        denoiser.compile_repeated_blocks(fullgraph=True)
    log.info("regional torch.compile of the transformer blocks")


def tile_on_oom(vae: Any, setting: str) -> None:
    """'on': always tile. 'auto': decode whole (exact) and fall back to tiles only when that runs out
    of GPU memory, so 8 s videos still decode on GPUs that cannot hold the whole decode."""
    if setting == "on":
        vae.enable_tiling()
        return
    if setting == "off":
        return
    decode = vae.decode

    def decode_or_tile(*args, **kwargs):
        try:
            return decode(*args, **kwargs)
        except torch.OutOfMemoryError:
            if getattr(vae, "use_tiling", False):
                raise
            log.warning("VAE decode ran out of GPU memory; decoding in tiles")
            torch.cuda.empty_cache()
            vae.enable_tiling()
            try:
                return decode(*args, **kwargs)
            finally:
                vae.disable_tiling()

    vae.decode = decode_or_tile


VAE_BF16_MIN_DB = 40.0  # bf16 decoding must stay this close to fp32 to be used ('auto')


def vae_precision(pipe: Any, setting: str, device: torch.device) -> float | None:
    """Decode in bf16 where that keeps the frames: the fp32 VAE (Wan's) and a bf16 copy decode the
    same probe latent, and the copy replaces it when its frames are within `VAE_BF16_MIN_DB` of
    fp32 ('auto'), or always ('bf16'). Returns the measured PSNR in dB (None: nothing to choose)."""
    vae = pipe.vae
    if setting == "fp32" or vae.dtype != torch.float32 or (setting == "auto" and device.type != "cuda"):
        return None
    if not {"z_dim", "latents_mean", "latents_std"} <= set(vae.config):
        return None  # not Wan's VAE: LTX's loads in the pipeline's dtype, as Lightricks run it
    trial = bf16_copy(vae)
    db = vae_psnr(vae, trial)
    if setting == "bf16" or db >= VAE_BF16_MIN_DB:
        pipe.vae = trial
        log.info("VAE decodes in bf16 (%.1f dB against fp32 on a probe latent)", db)
    else:
        log.info("VAE stays fp32: bf16 decodes a probe latent at %.1f dB, under %.0f", db, VAE_BF16_MIN_DB)
    return db


def bf16_copy(vae: Any) -> Any:
    """A fresh bf16 VAE with `vae`'s weights (a deepcopy would carry wrappers such as tile_on_oom's)."""
    trial = type(vae).from_config(vae.config).to(vae.device, torch.bfloat16)
    trial.load_state_dict(vae.state_dict())
    return trial.eval()


def vae_psnr(reference: Any, trial: Any, latent: torch.Tensor | None = None) -> float:
    """PSNR (dB, on 8-bit frames) of `trial`'s decode against `reference`'s, of `latent` or of a
    seeded probe latent with the VAE's own latent statistics (3 latent frames of a 480x832 video)."""
    if latent is None:
        latent = probe_latent(reference.config, reference.device)
    return frames_psnr(decode_8bit(reference, latent), decode_8bit(trial, latent))


def decode_8bit(vae: Any, latent: torch.Tensor) -> torch.Tensor:
    """A latent decoded and rounded to 8-bit levels (as floats), as a video's frames will be."""
    with torch.no_grad():
        video = vae.decode(latent.to(vae.dtype)).sample
    return ((video.float().clamp(-1, 1) + 1) * 127.5).round()


def frames_psnr(reference: torch.Tensor, frames: torch.Tensor) -> float:
    mse = torch.mean((reference - frames) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def probe_latent(config: Any, device: torch.device, frames: int = 3, size: tuple[int, int] = (30, 52)) -> Any:
    generator = torch.Generator("cpu").manual_seed(0)
    channels = config["z_dim"]
    latent = torch.randn(1, channels, frames, *size, generator=generator)
    mean = torch.tensor(config["latents_mean"]).view(1, channels, 1, 1, 1)
    std = torch.tensor(config["latents_std"]).view(1, channels, 1, 1, 1)
    return (latent * std + mean).to(device)

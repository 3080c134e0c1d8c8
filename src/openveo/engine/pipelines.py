"""Load a preset's diffusers pipeline(s) once, and translate one generation into its call arguments."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch

from openveo.config import Settings
from openveo.core.catalog import Preset
from openveo.core.modes import parse_step_cache
from openveo.engine import optimize
from openveo.engine.adapters import SwapSlot
from openveo.engine.guidance import BatchedGuidance
from openveo.engine.parallel import Group
from openveo.engine.prompts import PromptCache
from openveo.engine.samplers import PinnedTimesteps
from openveo.engine.tiny import ensure_tiny
from openveo.engine.weights import ModelNotAvailable, distillation_file, local_dir, locate

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A resident pipeline; the image-to-video one shares its modules (no second copy of weights)."""

    preset: Preset
    pipe: Any  # the pipeline loaded from the weights: text-to-video, or image-to-video if needs_image
    image_to_video: Any | None
    device: torch.device
    dtype: torch.dtype
    prompts: PromptCache | None = None  # None: the pipeline encodes prompts itself (the baseline)
    guidance: list[BatchedGuidance] = field(default_factory=list)
    compiled: bool = False
    vae_psnr_db: float | None = None  # bf16 decode against fp32 on a probe latent, where it was checked
    lora_slot_rank: int = 0  # compiled: the rank of the LoRA slot reserved before compiling (SwapSlot)

    @property
    def denoisers(self) -> list[Any]:
        """The transformers that denoise (Wan 2.2 A14B has two experts); diffusers models, typed loosely."""
        pipe = self.pipe
        return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m]


def quiet_libraries(verbose: bool = False) -> None:
    """diffusers and transformers log and draw progress bars on their own; keep the terminal ours."""
    import transformers

    level = logging.INFO if verbose else logging.ERROR
    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity(level)
        library.utils.logging.disable_progress_bar()


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def load_model(
    preset: Preset, settings: Settings, device: torch.device, group: Group | None = None
) -> LoadedModel:
    """Load the preset's weights, then set the pipeline up for speed the way `settings` asks."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pipe = load_pipeline(preset, settings.model_root, dtype, allow_download=settings.auto_download)
    return prepare(preset, pipe, device, settings, group)


def load_pipeline(preset: Preset, models_root: Path, dtype: torch.dtype, *, allow_download: bool) -> Any:
    """The stock diffusers pipeline on the CPU: bf16 for GPUs (the Wan VAE stays fp32, as its authors
    run it), fp32 for CPUs."""
    where = locate(preset, models_root)
    if preset.tiny and not where.present:
        ensure_tiny(preset.repo, Path(where.source))
    elif not where.present and not allow_download:
        raise ModelNotAvailable(preset, local_dir(preset, models_root), "weights not found")

    dtypes: Any = dtype
    if preset.family == "wan" and dtype != torch.float32:
        dtypes = {"default": dtype, "vae": torch.float32}
    pipeline_cls = getattr(diffusers, preset.pipeline)
    log.info("loading %s from %s (%s)", preset.name, where.source, dtype)
    try:
        pipe = pipeline_cls.from_pretrained(
            where.source, dtype=dtypes, local_files_only=where.local or not allow_download
        )
    except OSError as exc:  # missing or partial files, or no network to fetch them
        raise ModelNotAvailable(preset, local_dir(preset, models_root), str(exc).splitlines()[0]) from exc
    if (
        preset.boundary is not None
    ):  # the catalog's, checked against the publisher's (tests/engine/test_fast.py)
        pipe.register_to_config(boundary_ratio=preset.boundary)
    if preset.timesteps is not None and preset.family == "wan":  # LTX's pipelines take them per call
        pipe.scheduler = PinnedTimesteps(preset.timesteps, preset.shift, preset.renoise)
    elif preset.shift is not None:
        pipe.scheduler = _with_shift(pipe.scheduler, preset.shift)
    fuse_distillation(preset, pipe, models_root, allow_download=allow_download)
    return pipe


def fuse_distillation(preset: Preset, pipe: Any, models_root: Path, *, allow_download: bool) -> None:
    """Fold a fast preset's distillation LoRAs into the weights they target, once at load: they then
    cost nothing per step, and requests' own adapters go on top of the distilled model."""
    for index, lora in enumerate(preset.distillation):
        path = distillation_file(preset, lora, models_root, allow_download=allow_download)
        if lora.repo == "tiny" and not path.exists():
            from openveo.engine.tiny import random_lora, save_lora

            target = getattr(pipe, lora.into)
            save_lora(random_lora(target, lora.rank, seed=100 + index, key_format="original"), path)
        name = f"distillation_{index}"
        pipe.load_lora_weights(
            str(path), adapter_name=name, load_into_transformer_2=lora.into == "transformer_2"
        )
        pipe.fuse_lora(components=[lora.into], lora_scale=lora.scale, adapter_names=[name])
    if preset.distillation:
        pipe.unload_lora_weights()  # the fused weights stay; the PEFT layers go
        log.info("fused %d distillation LoRA(s) into %s", len(preset.distillation), preset.name)


def prepare(
    preset: Preset, pipe: Any, device: torch.device, settings: Settings, group: Group | None = None
) -> LoadedModel:
    """Place a stock pipeline on its device and apply the speed settings (docs/performance.md)."""
    model = LoadedModel(preset, pipe, None, device, torch.float32)
    denoisers = model.denoisers
    model.dtype = dtype = denoisers[0].dtype
    optimize.place(pipe, device, settings.offload)
    model.compiled = settings.compile == "on" or (settings.compile == "auto" and device.type == "cuda")
    if model.compiled:  # before fp8 wraps the linears, and before compiling sees them
        SwapSlot.reserve(denoisers, settings.lora_max_rank)
        model.lora_slot_rank = settings.lora_max_rank
    if settings.quantize == "fp8":
        optimize.quantize_fp8(denoisers, device, settings.offload)
    attention = optimize.pick_attention(settings.attention, device)
    if group is not None and group.plan.context_parallel and attention is None:
        attention = "native"  # PyTorch SDPA through diffusers' dispatcher, which knows Ulysses
    optimize.set_attention(denoisers, attention)
    if group is not None:
        if group.plan.context_parallel and preset.family == "ltx" and preset.supports_image:
            # diffusers' LTX plan splits the tokens but not a per-token timestep, which a condition gives
            raise optimize.UnsupportedMode(
                f"{preset.name} cannot split its sequence across GPUs when it is conditioned on images "
                "or a video; run it on one GPU per video, or split by guidance only (gpus_per_video 2)"
            )
        for denoiser in denoisers:
            group.split_sequence(denoiser)
    optimize.enable_step_cache(denoisers, parse_step_cache(settings.step_cache))
    model.vae_psnr_db = optimize.vae_precision(pipe, settings.vae_dtype, device)
    optimize.tile_on_oom(pipe.vae, settings.vae_tiling)
    if model.compiled:
        optimize.compile_blocks(denoisers)
    model.prompts = PromptCache(pipe, preset.family, dtype)
    cfg_split = group.cfg_group if group is not None else None
    if preset.family == "wan" and (settings.batch_cfg or cfg_split is not None):
        model.guidance = [BatchedGuidance(d, cfg_split, group.cfg_rank if group else 0) for d in denoisers]
    pipe.set_progress_bar_config(disable=True)
    if preset.needs_image:
        model.image_to_video = pipe
    elif preset.i2v_pipeline:
        model.image_to_video = on_same_modules(getattr(diffusers, preset.i2v_pipeline), pipe)
        model.image_to_video.set_progress_bar_config(disable=True)
    return model


def on_same_modules(pipeline_cls: Any, pipe: Any) -> Any:
    """`pipeline_cls` built on `pipe`'s modules and settings, as they are. (diffusers' `from_pipe` would
    cast every shared module to one dtype, fp32 unless told: a bf16 transformer would double in size.)"""
    accepted = inspect.signature(pipeline_cls.__init__).parameters
    settings = {k: v for k, v in pipe.config.items() if not k.startswith("_")}
    return pipeline_cls(**{k: v for k, v in {**settings, **pipe.components}.items() if k in accepted})


def _with_shift(scheduler: Any, shift: float) -> Any:
    """Flow-matching schedulers spell the shift differently; set whichever this one has."""
    config = scheduler.config
    key = "flow_shift" if "flow_shift" in config else "shift" if "shift" in config else None
    if key is None:
        return scheduler
    return type(scheduler).from_config(config, **{key: shift})


def call_arguments(
    preset: Preset,
    *,
    prompt: str,
    negative_prompt: str | None,
    width: int,
    height: int,
    num_frames: int,
    steps: int,
    guidance: float,
    guidance_2: float | None,
) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=width,
        height=height,
        num_frames=num_frames,
        num_inference_steps=steps,
        guidance_scale=guidance,
        output_type="np",
    )
    if preset.family == "ltx":
        args["frame_rate"] = preset.fps  # LTX conditions its positional encoding on the frame rate
        if preset.timesteps is not None:  # a distilled LTX: the timesteps it was distilled at
            args["timesteps"] = list(preset.timesteps)
        ltx_settings = {
            "guidance_rescale": preset.guidance_rescale,
            "decode_timestep": preset.decode_timestep,
            "decode_noise_scale": preset.decode_noise_scale,
            "image_cond_noise_scale": preset.image_cond_noise_scale,
        }
        args |= {name: value for name, value in ltx_settings.items() if value is not None}
    if guidance_2 is not None:
        args["guidance_scale_2"] = guidance_2  # Wan 2.2 A14B: the low-noise expert's guidance
    return args

"""The engine benchmark: plain diffusers against openveo's engine, on the same weights and seed.

Full-size architectures are built from their published configs with random weights, straight on
the device: a network's speed does not depend on its weight values, so no download is needed. The
baseline is the pipeline as its documentation runs it (bf16, default attention, no compile, two
guidance passes per step). openveo then sets the same pipeline up its own way and makes the same
video; the decoded frames are compared with the baseline's (PSNR). Opt-in modes run last, each
measured against the same baseline frames.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from openveo.config import Settings
from openveo.core.catalog import Catalog, Preset
from openveo.core.loras import LoraUse
from openveo.core.request import GenerationRequest
from openveo.engine.engine import Engine, StageClock, to_uint8
from openveo.engine.optimize import UnsupportedMode
from openveo.engine.pipelines import LoadedModel, prepare, resolve_device
from openveo.engine.samplers import PinnedTimesteps
from openveo.engine.tiny import BUILDERS, random_lora, save_lora
from openveo.engine.video import write_mp4

PROMPT = "A red fox runs through fresh snow at dawn, cinematic, shallow depth of field"
WARM_UP_PROMPT = "warm-up"
NEGATIVE = "blurry, low quality, static, distorted"
STAGES = ("text_encoding", "denoising", "vae_decode", "mp4_encode")
MODES = ("exact", "first-block", "taylorseer", "fast", "fast+lora", "fp8")
# `fast`: each architecture's own fast preset (docs/fast-presets.md) sampled on the same network: one
# pass per step at its pinned timesteps (FastWan's 3 DMD steps, LightX2V's 4), no guidance. A fused
# distillation LoRA or a distilled checkpoint leaves the network's arithmetic as it is, so random
# weights time it exactly; its frames are another model's, so no PSNR. `fast+lora` adds a request
# adapter of the recipe's rank (64 where the recipe has none) on every linear layer of the blocks,
# through the engine's adapter path (the compiled slot on a GPU).
FAST_PRESETS = {
    "wan2.1-t2v-1.3b": "wan2.1-t2v-1.3b-fast",
    "wan2.2-ti2v-5b": "wan2.2-ti2v-5b-fast",
    "wan2.1-t2v-14b": "wan2.1-t2v-14b-fast",
    "wan2.2-t2v-a14b": "wan2.2-t2v-a14b-fast",
    "wan2.1-i2v-14b-480p": "wan2.1-i2v-14b-480p-fast",
    "wan2.2-i2v-a14b": "wan2.2-i2v-a14b-fast",
    "tiny-wan2.1": "tiny-wan2.1-fast",
    "tiny-wan2.2": "tiny-wan2.2-fast",
    "tiny-wan2.1-i2v": "tiny-wan2.1-i2v-fast",
    "tiny-wan2.2-a14b": "tiny-wan2.2-a14b-fast",
}
REQUEST_LORA_RANK = 64  # LightX2V's distillation rank, and a common one for style adapters


def fast_recipe(arch: str) -> tuple[Preset, int]:
    """The architecture's fast preset and the rank of the request LoRA `fast+lora` applies."""
    recipe = Catalog().resolve(FAST_PRESETS[arch])
    rank = recipe.distillation[0].rank if recipe.distillation and not recipe.tiny else REQUEST_LORA_RANK
    return recipe, rank


# umT5-XXL, Wan's text encoder (google/umt5-xxl encoder half).
UMT5_XXL: dict[str, Any] = dict(
    vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, tie_word_embeddings=False,
)  # fmt: skip
WAN21_VAE: dict[str, Any] = {}  # AutoencoderKLWan's defaults are the Wan 2.1 VAE
WAN22_VAE = dict(
    base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
    temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
    patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
    latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
)  # fmt: skip


def _wan_transformer(dim: int, heads: int, ffn: int, layers: int, channels: int) -> dict[str, Any]:
    assert dim == heads * 128
    return dict(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=128, in_channels=channels,
        out_channels=channels, text_dim=4096, freq_dim=256, ffn_dim=ffn, num_layers=layers,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    )  # fmt: skip


# laion/CLIP-ViT-H-14-laion2B-s32B-b79K, Wan 2.1 I2V's image encoder (diffusers'
# scripts/convert_wan_to_diffusers.py; the ViT-H/14 of Wan's own wan/modules/clip.py).
CLIP_VIT_H14: dict[str, Any] = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
    image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu",
)  # fmt: skip


@dataclass(frozen=True)
class Architecture:
    """A full-size network layout (the configs of the published checkpoints). Its video and sampling
    settings (size, frames, fps, steps, guidance, shift, expert boundary) are its catalog preset's."""

    name: str  # the catalog preset it measures
    transformer: dict[str, Any]
    vae: dict[str, Any]
    expand_timesteps: bool = False  # Wan 2.2 TI2V: one timestep per latent token
    experts: int = 1  # Wan 2.2 A14B: a high-noise and a low-noise transformer of the same layout
    image_encoder: dict[str, Any] | None = None  # Wan 2.1 I2V: CLIP vision features for cross-attention


_WAN14B = _wan_transformer(5120, 40, 13824, 40, 16)
_I2V = dict(in_channels=36, out_channels=16)  # noise, the first frame's latents and a 4-channel mask
_CLIP_KV = dict(image_dim=1280, added_kv_proj_dim=5120)  # Wan 2.1 I2V: image keys and values per block
ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("wan2.1-t2v-1.3b", _wan_transformer(1536, 12, 8960, 30, 16), WAN21_VAE),
        Architecture("wan2.2-ti2v-5b", _wan_transformer(3072, 24, 14336, 30, 48), WAN22_VAE,
                     expand_timesteps=True),
        Architecture("wan2.1-t2v-14b", _WAN14B, WAN21_VAE),
        Architecture("wan2.2-t2v-a14b", _WAN14B, WAN21_VAE, experts=2),
        Architecture("wan2.1-i2v-14b-480p", _WAN14B | _I2V | _CLIP_KV, WAN21_VAE, image_encoder=CLIP_VIT_H14),
        Architecture("wan2.2-i2v-a14b", _WAN14B | _I2V, WAN21_VAE, experts=2),
    )
}  # fmt: skip
TINY = {
    "tiny-wan2.1": "wan2.1",
    "tiny-wan2.2": "wan2.2",
    "tiny-wan2.1-i2v": "wan2.1-i2v",
    "tiny-wan2.2-a14b": "wan2.2-a14b",
}


@dataclass
class Case:
    """One benchmark video: an architecture, its size, and the sampling settings."""

    arch: str
    width: int
    height: int
    frames: int
    fps: int
    steps: int = 50
    guidance: float = 5.0
    guidance_2: float | None = None  # Wan 2.2 A14B: the low-noise expert's
    seed: int = 42


@dataclass
class Run:
    mode: str
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, plus "end_to_end"
    seconds_per_step: float = 0.0
    peak_memory_gib: float | None = None
    psnr_db: float | None = None  # against the baseline's frames; inf when identical
    passes: int | None = None  # transformer passes per video (a batch of two guidance passes is two)
    skipped: str | None = None


@dataclass
class VaeRun:
    """The VAE decode of one video-sized latent in one precision, against fp32."""

    dtype: str
    seconds: float
    psnr_db: float  # against the fp32 decode, on 8-bit frames; inf when identical


def build_pipeline(arch: str, device: torch.device, dtype: torch.dtype) -> Any:
    """A stock Wan pipeline with random weights, created directly on `device` in the dtypes
    `from_pretrained` would give (bf16, with the model's fp32 modules and the fp32 VAE)."""
    import diffusers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    from openveo.engine.tiny import build_tokenizer

    if arch in TINY:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return BUILDERS[TINY[arch]]().to(device)
    spec, preset = ARCHITECTURES[arch], Catalog().resolve(arch)
    torch.manual_seed(0)
    parts: dict[str, Any] = {}
    with torch.device(device), _default_dtype(dtype):
        for name in ("transformer", "transformer_2")[: spec.experts]:
            parts[name] = diffusers.WanTransformer3DModel(**spec.transformer)
            _keep_fp32(parts[name])
        parts["text_encoder"] = UMT5EncoderModel(UMT5Config(**UMT5_XXL))
        if spec.image_encoder:
            parts["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(**spec.image_encoder))
            size = spec.image_encoder["image_size"]
            parts["image_processor"] = CLIPImageProcessor(size={"shortest_edge": size}, crop_size=size)
    with torch.device(device):
        parts["vae"] = diffusers.AutoencoderKLWan(**spec.vae)
    for name in ("transformer", "transformer_2", "text_encoder", "image_encoder", "vae"):
        if name in parts:
            _calm(parts[name])
            parts[name].eval()
    if spec.experts == 2:
        parts["boundary_ratio"] = preset.boundary
    parts["scheduler"] = diffusers.UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=preset.shift,
        num_train_timesteps=1000,
    )
    # Any T5-style tokenizer gives the same compute: the pipeline pads every prompt to 512 tokens.
    pipeline_cls = getattr(diffusers, preset.pipeline)
    return pipeline_cls(tokenizer=build_tokenizer(), expand_timesteps=spec.expand_timesteps, **parts)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _keep_fp32(model: Any) -> None:
    """What from_pretrained does with a model's `_keep_in_fp32_modules` (Wan: rope, norms, time embedder)."""
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, param in model.named_parameters():
        if keep & set(name.split(".")):
            param.data = param.data.float()


@torch.no_grad()
def _calm(module: Any) -> None:
    """Random init at full depth blows activations up to inf in bf16, and inf frames compare as
    equal. Scaling each weight matrix to a small spectral size keeps the values finite and varied,
    so PSNR measures real numerical agreement; the arithmetic done is unchanged. (A build on the meta
    device, which checks a layout, has no values to scale.)"""
    for param in module.parameters():
        if param.ndim >= 2 and not param.is_meta:
            param.mul_(0.5 / math.sqrt(param[0].numel()) / max(param.float().std().item(), 1e-8))


def case_for(arch: str, *, steps: int | None = None) -> Case:
    """The architecture's catalog preset's own video: its 16:9 size, 5 seconds, its steps and guidance."""
    preset = Catalog().resolve(arch)
    width, height = preset.size_for("16:9")
    return Case(
        arch, width, height, preset.frames_for(5), preset.fps, steps or preset.steps, preset.guidance,
        preset.guidance_2,
    )  # fmt: skip


def _preset(case: Case) -> Preset:
    """The architecture's preset describing the benchmark video, so openveo's engine runs it like any
    served model."""
    return replace(
        Catalog().resolve(case.arch),
        name=f"bench-{case.arch}",
        sizes={"16:9": (case.width, case.height)},
        fps=case.fps,
        steps=case.steps,
        guidance=case.guidance,
        guidance_2=case.guidance_2,
        durations=(5,),
        tiny=False,
    )


def first_frame(case: Case) -> Image.Image:
    """The image an image-to-video case starts from: smooth colour gradients at the video's size (the
    image encoder and VAE do the same work whatever the picture)."""
    y, x = np.mgrid[0 : case.height, 0 : case.width]
    rgb = np.stack([x * 255 // max(case.width - 1, 1), y * 255 // max(case.height - 1, 1), (x + y) % 256], -1)
    return Image.fromarray(rgb.astype(np.uint8))


class Bench:
    """Runs one case: baseline first on the pristine pipeline, then openveo, then the opt-in modes."""

    def __init__(self, case: Case, device: torch.device, settings: Settings) -> None:
        self.case = case
        self.device = device
        self.settings = settings
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.baseline_frames: np.ndarray | None = None

    def baseline(self, pipe: Any, warm_up_steps: int = 2) -> Run:
        """The plain pipeline, called the way its documentation shows."""
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        preset = _preset(self.case)
        model = LoadedModel(preset, pipe, None, self.device, self.dtype)
        c = self.case
        extra: dict[str, Any] = {}
        if preset.needs_image:
            extra["image"] = first_frame(c)
        if c.guidance_2 is not None:
            extra["guidance_scale_2"] = c.guidance_2

        def call(steps: int, clock: StageClock | None = None) -> np.ndarray:
            kwargs = extra if clock is None else {**extra, "callback_on_step_end": _stepper(clock)}
            return pipe(
                prompt=PROMPT, negative_prompt=NEGATIVE, width=c.width, height=c.height, num_frames=c.frames,
                num_inference_steps=steps, guidance_scale=c.guidance, output_type="np",
                generator=torch.Generator("cpu").manual_seed(c.seed), **kwargs,
            ).frames[0]  # fmt: skip

        call(warm_up_steps)  # CUDA context, cuBLAS handles, allocator: not what a user waits for twice
        clock = StageClock(model)

        def timed_call() -> tuple[np.ndarray, dict[str, float]]:
            with clock.run():
                frames = call(c.steps, clock)
            return frames, clock.timings

        run, frames = self._timed("baseline", timed_call, model.denoisers)
        self.baseline_frames = frames
        return run

    def openveo(self, pipe: Any) -> tuple[Run, LoadedModel]:
        """The same pipeline, set up by openveo's engine with the current speed settings."""
        model = prepare(_preset(self.case), pipe, self.device, self.settings)
        return self.run_engine(model, "openveo"), model

    def run_engine(
        self,
        model: LoadedModel,
        mode: str,
        steps: int | None = None,
        guidance: float | None = None,
        lora: Path | None = None,
    ) -> Run:
        """One video through openveo's engine, optionally with `lora` as the request's adapter; the
        preset's guidance (each expert its own) unless `guidance` overrides it."""
        files = {hashlib.sha256(lora.read_bytes()).hexdigest(): lora} if lora else {}
        engine = Engine(self.settings, Catalog(), lora_files=files.__getitem__)
        engine.adopt(model)
        request = GenerationRequest(
            prompt=PROMPT, negative_prompt=NEGATIVE, model=model.preset.name, seed=self.case.seed,
            steps=steps or self.case.steps, guidance=guidance,
            loras=tuple(LoraUse("bench", sha256) for sha256 in files),
            image=_png(first_frame(self.case)) if model.preset.needs_image else None,
        )  # fmt: skip
        # Warm-up (compiles, when compile is on) with another prompt: the timed run then finds only the
        # negative prompt cached, as a service's next job would.
        engine.generate(replace(request, prompt=WARM_UP_PROMPT, steps=request.steps if steps else 2))
        if model.prompts is not None:
            model.prompts.discard(PROMPT)

        def generate() -> tuple[np.ndarray, dict[str, float]]:
            generation = engine.generate(request)
            return generation.videos[0], generation.timings

        try:
            run, _ = self._timed(mode, generate, model.denoisers, request.steps or self.case.steps)
        finally:
            engine.adapters(model).activate(())  # the next mode runs the base network again
        return run

    def _timed(
        self,
        mode: str,
        make: Callable[[], tuple[np.ndarray, dict[str, float]]],
        denoisers: list[Any],
        steps: int | None = None,
    ) -> tuple[Run, np.ndarray]:
        """Run `make` (frames and their stage timings), encode its frames, and time it all; count the
        transformer passes."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        started = time.perf_counter()
        with count_passes(denoisers) as passes:
            frames, stages = make()
        frames = frames if frames.dtype == np.uint8 else to_uint8(frames)
        encode_started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            write_mp4(frames, Path(tmp) / "bench.mp4", self.case.fps)
        ended = time.perf_counter()
        timings = dict(stages)
        timings["mp4_encode"] = ended - encode_started
        timings["end_to_end"] = ended - started
        run = Run(mode, {k: round(v, 4) for k, v in timings.items()}, passes=passes[0])
        run.seconds_per_step = round(timings["denoising"] / (steps or self.case.steps), 4)
        if self.device.type == "cuda":
            run.peak_memory_gib = round(torch.cuda.max_memory_allocated(self.device) / 2**30, 2)
        if self.baseline_frames is not None and not mode.startswith("fast"):
            run.psnr_db = psnr(self.baseline_frames, frames)
        return run, frames


@contextmanager
def count_passes(denoisers: list[Any]) -> Iterator[list[int]]:
    """Transformer passes while the block runs: each forward counts its batch (batched guidance runs
    the prompt and negative passes as one forward of two)."""
    passes = [0]

    def count(_module: Any, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        passes[0] += hidden.shape[0]

    handles = [d.register_forward_pre_hook(count, with_kwargs=True) for d in denoisers]
    try:
        yield passes
    finally:
        for handle in handles:
            handle.remove()


def _stepper(clock: StageClock) -> Callable:
    def on_step_end(_pipe, _step, _t, tensors):
        clock.step_ended()
        return tensors

    return on_step_end


def psnr(reference: np.ndarray, frames: np.ndarray) -> float:
    """Peak signal-to-noise ratio of uint8 frames in dB; inf when identical."""
    mse = np.mean((reference.astype(np.float64) - frames.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else round(10 * math.log10(255.0**2 / mse), 2)


def run_case(
    case: Case,
    settings: Settings,
    modes: tuple[str, ...] = MODES,
    on_run: Callable[[Run], None] | None = None,
) -> tuple[list[Run], list[VaeRun]]:
    """Baseline, then each mode on the same weights (modes that change the weights, fp8, go last),
    then the VAE decode alone in each precision."""
    runs: list[Run] = []

    def record(run: Run) -> None:
        runs.append(run)
        if on_run:
            on_run(run)

    bench = Bench(case, resolve_device(settings.device), settings)
    pipe = build_pipeline(case.arch, bench.device, bench.dtype)
    record(bench.baseline(pipe))
    fp32_vae = pipe.vae  # openveo may swap in a bf16 copy (OPENVEO_VAE_DTYPE): vae_runs has both
    run, model = bench.openveo(pipe)
    record(run)
    for mode in modes:
        if mode == "exact":
            continue
        try:
            record(_mode_run(bench, model, mode))
        except UnsupportedMode as exc:
            record(Run(mode, skipped=str(exc)))
    return runs, vae_runs(fp32_vae, case)


def vae_runs(vae: Any, case: Case) -> list[VaeRun]:
    """The case's VAE decode in fp32 and in a bf16 copy (what OPENVEO_VAE_DTYPE chooses between), on
    a latent of the video's shape drawn with the VAE's own statistics: a decode's speed does not
    depend on the values, and its precision is measured against fp32 on the same latent."""
    from openveo.engine.optimize import bf16_copy, decode_8bit, frames_psnr, probe_latent

    config = vae.config
    spatial, temporal = config.get("scale_factor_spatial", 8), config.get("scale_factor_temporal", 4)
    size = (case.height // spatial, case.width // spatial)
    latent = probe_latent(config, vae.device, frames=(case.frames - 1) // temporal + 1, size=size)
    runs: list[VaeRun] = []
    reference: torch.Tensor | None = None
    for name, module in (("fp32", vae), ("bf16", bf16_copy(vae))):
        decode_8bit(module, latent[:, :, :2])  # cuDNN's algorithm search, not part of a decode
        if vae.device.type == "cuda":
            torch.cuda.synchronize(vae.device)
        started = time.perf_counter()
        frames = decode_8bit(module, latent)
        if vae.device.type == "cuda":
            torch.cuda.synchronize(vae.device)
        seconds = time.perf_counter() - started
        reference = frames if reference is None else reference
        runs.append(VaeRun(name, round(seconds, 4), round(frames_psnr(reference, frames), 2)))
        del frames
    return runs


def _mode_run(bench: Bench, model: LoadedModel, mode: str) -> Run:
    from openveo.core.modes import parse_step_cache
    from openveo.engine import optimize

    if mode in ("fast", "fast+lora"):
        pipe, scheduler = model.pipe, model.pipe.scheduler
        recipe, rank = fast_recipe(bench.case.arch)
        assert recipe.timesteps is not None
        pipe.scheduler = PinnedTimesteps(recipe.timesteps, recipe.shift, recipe.renoise)
        try:
            if mode == "fast":
                return bench.run_engine(model, mode, steps=recipe.steps, guidance=recipe.guidance)
            with tempfile.TemporaryDirectory() as tmp:
                lora = random_lora(model.denoisers[0], rank, seed=64, std=0.01)
                path = save_lora(lora, Path(tmp) / "bench-lora.safetensors")
                return bench.run_engine(model, mode, recipe.steps, recipe.guidance, lora=path)
        finally:
            pipe.scheduler = scheduler
    if mode == "fp8":
        optimize.quantize_fp8(
            model.denoisers, bench.device, bench.settings.offload
        )  # irreversible: the last mode to run
        return bench.run_engine(model, mode)
    optimize.enable_step_cache(model.denoisers, parse_step_cache(mode))
    try:
        return bench.run_engine(model, mode)
    finally:
        for denoiser in model.denoisers:
            denoiser.disable_cache()


def environment(device: torch.device) -> dict[str, str]:
    import diffusers
    import transformers

    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        env["cuda"] = str(torch.version.cuda)
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """JSON for machines, a markdown table for people; named after the device and the time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = results["environment"]["device"]
    slug = "".join(ch if ch.isalnum() else "-" for ch in device.lower()).strip("-")
    slug = "-".join(part for part in slug.split("-") if part)[:40]
    stem = f"engine-{slug}-{results['started'][:10]}"
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2, default=_json_number) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def _json_number(value: Any) -> Any:
    return str(value)


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        f"# Engine benchmark: {env['device']}",
        "",
        f"{results['started']} · torch {env['torch']} · diffusers {env['diffusers']} · "
        f"transformers {env['transformers']}" + (f" · CUDA {env['cuda']}" if "cuda" in env else ""),
        f"Settings: {results['settings']}",
        "",
    ]
    for case in results["cases"]:
        c = case["case"]
        lines += [
            f"## {c['arch']}: {c['width']}x{c['height']}, {c['frames']} frames, {c['steps']} steps, "
            f"guidance {c['guidance']}",
            "",
            "| run | end to end s | speed-up | passes | s/step | text s | denoise s | VAE decode s | MP4 s "
            "| peak GiB | PSNR dB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        base = case["runs"][0]["seconds"].get("end_to_end")
        for run in case["runs"]:
            if run["skipped"]:
                lines.append(f"| {run['mode']} | skipped: {run['skipped']} ||||||||||")
                continue
            s = run["seconds"]
            speedup = f"{base / s['end_to_end']:.2f}x" if base else ""
            psnr_text = "" if run["psnr_db"] is None else str(run["psnr_db"])
            memory = "" if run["peak_memory_gib"] is None else str(run["peak_memory_gib"])
            passes = "" if run.get("passes") is None else str(run["passes"])
            lines.append(
                f"| {run['mode']} | {s['end_to_end']:.2f} | {speedup} | {passes} "
                f"| {run['seconds_per_step']:.3f} "
                + "".join(f"| {s.get(stage, 0):.2f} " for stage in STAGES)
                + f"| {memory} | {psnr_text} |"
            )
        if case.get("vae"):
            lines += ["", "| VAE decode alone | seconds | PSNR dB against fp32 |", "|---|---|---|"]
            lines += [f"| {v['dtype']} | {v['seconds']:.2f} | {v['psnr_db']} |" for v in case["vae"]]
        lines.append("")
    return "\n".join(lines)


def benchmark(
    archs: list[str],
    settings: Settings,
    *,
    modes: tuple[str, ...] = MODES,
    steps: int | None = None,
    on_run: Callable[[str, Run], None] | None = None,
) -> dict[str, Any]:
    device = resolve_device(settings.device)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "environment": environment(device),
        "settings": _speed_settings(settings),
        "cases": [],
    }
    for arch in archs:
        case = case_for(arch, steps=steps)
        runs, vae = run_case(case, settings, modes, functools.partial(on_run, arch) if on_run else None)
        results["cases"].append(
            {"case": asdict(case), "runs": [asdict(r) for r in runs], "vae": [asdict(v) for v in vae]}
        )
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def _speed_settings(settings: Settings) -> str:
    names = ("attention", "compile", "batch_cfg", "vae_dtype", "vae_tiling", "offload")
    return ", ".join(f"{name}={getattr(settings, name)}" for name in names)

"""One generation: a validated request in, decoded frames out, with progress, cancel and stage timings."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from openveo.config import Settings
from openveo.core.catalog import Capability, Catalog, Preset
from openveo.core.loras import LoraUse
from openveo.core.request import GenerationRequest
from openveo.engine.adapters import AdapterError, Adapters, LocateFn, SwapSlot
from openveo.engine.conditioning import (
    BadInput,
    Edit,
    edit_of,
    extension_of,
    fit_image,
    keyframe_arguments,
    vace_arguments,
)
from openveo.engine.parallel import Group, GroupBroken
from openveo.engine.pipelines import LoadedModel, call_arguments, load_model, resolve_device
from openveo.engine.samplers import PinnedTimesteps
from openveo.provenance.identity import Watermark
from openveo.provenance.watermark import watermark_pattern

# The request a warm-up runs per shape: two steps are enough to compile every graph a job will use.
WARM_UP = GenerationRequest(model="", prompt="warm-up", seed=0, steps=2)
# ...and once more with the LoRA slot on: an adapter at scale 0 adds nothing and needs no file.
WARM_UP_LORAS = (LoraUse(name="warm-up", sha256="0" * 64, scale=0.0),)

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (steps done, steps in all)
CancelFn = Callable[[], bool]


class Canceled(Exception):
    """Raised between denoising steps when the cancel check says so; nothing is returned or written."""


@dataclass
class Generation:
    videos: list[np.ndarray]  # one (frames, height, width, 3) uint8 array per video
    seeds: list[int]
    preset: Preset
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over videos
    loras: tuple[LoraUse, ...] = ()  # the adapters it ran with
    source_frames: int = (
        0  # frames that hold the source video's own pixels (an extension's first, an edit's all)
    )


class Engine:
    """Holds loaded pipelines resident (one per preset) and runs generations on them."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        group: Group | None = None,
        lora_files: LocateFn | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.device = group.device if group else resolve_device(settings.device)
        self.group = group  # several GPUs per video: rank 0 leads, the others follow (engine/parallel.py)
        self.lora_files = lora_files  # where a request's LoRA files are (the worker's result store)
        self._loaded: dict[str, LoadedModel] = {}
        self._adapters: dict[str, Adapters | SwapSlot] = {}

    def load(self, model: str) -> LoadedModel:
        if model in self._loaded:  # a preset name, or a model handed over with `adopt`
            return self._loaded[model]
        preset = self.catalog.resolve(model)
        if preset.name not in self._loaded:
            started = time.perf_counter()
            self._loaded[preset.name] = load_model(preset, self.settings, self.device, self.group)
            log.info("loaded %s in %.1fs", preset.name, time.perf_counter() - started)
        return self._loaded[preset.name]

    def adopt(self, model: LoadedModel) -> None:
        """Serve an already prepared pipeline (the benchmark builds its own)."""
        self._loaded[model.preset.name] = model

    def adapters(self, model: LoadedModel) -> Adapters | SwapSlot:
        """The LoRA adapters of a loaded model (they live in its transformer): swapped into the slot
        a compiled one reserved, or loaded beside its weights."""
        name = model.preset.name
        if name not in self._adapters:
            budget = int(self.settings.lora_cache_gib * 2**30)
            if model.lora_slot_rank:
                self._adapters[name] = SwapSlot(model.pipe, self._lora_file, budget, model.lora_slot_rank)
            else:
                self._adapters[name] = Adapters(model.pipe, self._lora_file, budget)
        return self._adapters[name]

    def held_loras(self) -> set[str]:
        """The sha256s of the adapters loaded into a transformer now: jobs with them start sooner."""
        return {sha for adapters in self._adapters.values() for sha in adapters.resident}

    def _lora_file(self, sha256: str) -> Path:
        if self.lora_files is None:
            raise RuntimeError("this engine was given no LoRA store, so it cannot apply adapters")
        return self.lora_files(sha256)

    def warm_up(self, model: str) -> bool:
        """Compile for every (aspect ratio, duration) the model serves, with its LoRA slot off and on,
        before the first job claims it: a compiled block recompiles on a new shape, and that must not
        land on a user's video."""
        loaded = self.load(model)
        if not loaded.compiled:
            return False
        preset = loaded.preset
        lora_sets = ((), WARM_UP_LORAS) if loaded.lora_slot_rank else ((),)
        for aspect_ratio in preset.aspect_ratios:
            for duration in preset.durations:
                started = time.perf_counter()
                request = replace(WARM_UP, model=preset.name, aspect_ratio=aspect_ratio, duration_s=duration)
                for first, last in warm_up_inputs(preset):
                    for loras in lora_sets:
                        warm = replace(request, loras=loras, image=first, last_image=last)
                        self.generate(warm, decode=False)
                log.info(
                    "warmed up %s %s %ss in %.1fs",
                    preset.name,
                    aspect_ratio,
                    duration,
                    time.perf_counter() - started,
                )
        return True

    def follow(self) -> None:
        """A follower rank's life: run each generation its leader shares, until told to stop."""
        assert self.group is not None and not self.group.leader
        while (request := self.group.share(None)) is not None:
            try:
                self.generate(request)
            except Canceled:
                pass
            except GroupBroken:
                raise
            except Exception:  # the leader sees the same failure and reports it; stay in the group
                log.exception("follower generation failed")

    def release_followers(self) -> None:
        if self.group is not None and self.group.leader:
            with contextlib.suppress(GroupBroken):  # else nobody is left to release
                self.group.share(None)

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
        decode: bool = True,
        watermark: Watermark | None = None,
    ) -> Generation:
        """`decode=False` stops at the latents (a warm-up: the VAE is not compiled); no videos then."""
        if self.group is not None and self.group.leader:
            self.group.share(request)
        follower = self.group is not None and not self.group.leader
        decode = decode and not follower  # only the leader decodes and delivers
        model = self.load(request.model)
        preset = model.preset
        width, height = preset.size_for(request.aspect_ratio)
        extension, edit = extension_of(request, preset), edit_of(request, preset)
        if extension is not None:
            num_frames = extension.frames
        elif edit is not None:
            num_frames = preset.edit_frames(edit.frames)
        else:
            num_frames = preset.frames_for(request.duration_s)
        steps = request.steps or preset.steps
        guidance = preset.guidance if request.guidance is None else request.guidance
        # A guidance override applies to both Wan 2.2 experts; otherwise each keeps its preset value.
        guidance_2 = preset.guidance_2 if request.guidance is None or preset.guidance_2 is None else guidance
        args = call_arguments(
            preset,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=width,
            height=height,
            num_frames=num_frames,
            steps=steps,
            guidance=guidance,
            guidance_2=guidance_2,
        )
        # Decoded frames stay on the device as tensors: resizing, the watermark and the conversion to
        # bytes run there (on the GPU when there is one), and only the finished uint8 frames move.
        args["output_type"] = "pt" if decode else "latent"
        try:
            self.adapters(model).activate(request.loras)
        except AdapterError as exc:  # the request's adapter cannot run here: again would fail again
            raise BadInput(str(exc)) from exc
        pipe = model.pipe
        if preset.vace:  # every condition as a control video, its mask and reference images
            args.update(vace_arguments(request, width, height, num_frames, extension, edit))
        elif preset.keyframes:  # images and clips placed at frames
            args.update(keyframe_arguments(request, width, height, num_frames, extension))
        elif request.image is not None:
            pipe = model.image_to_video
            args["image"] = fit_image(request.image, width, height)
            if request.last_image is not None:  # WanImageToVideoPipeline: the video ends on it
                args["last_image"] = fit_image(request.last_image, width, height)

        total = steps * request.num_videos
        # An extension's answer starts with the source's own frames, finished (marked) once for all videos.
        kept = None
        if extension is not None and decode:
            kept = finish_frames(extension.source_tensor, extension.size, watermark)
        clock = StageClock(model)
        seeds = [(request.seed + i) % (2**63) for i in range(request.num_videos)]
        videos = []
        for index, seed in enumerate(seeds):
            if should_cancel and should_cancel():
                raise Canceled()
            done_before = index * steps

            def on_step_end(_pipe, step, _t, tensors, done_before=done_before):
                clock.step_ended()
                if on_progress:
                    on_progress(done_before + step + 1, total)
                stop = bool(should_cancel and should_cancel())
                if self.group is not None:
                    stop = self.group.any(stop)
                if stop:
                    raise Canceled()
                return tensors

            generator = torch.Generator("cpu").manual_seed(seed)  # CPU noise: the same on every device
            if isinstance(pipe.scheduler, PinnedTimesteps):  # DMD's fresh noise between steps, seeded
                pipe.scheduler.noise = torch.Generator("cpu").manual_seed(seed ^ 0x5EED)
            with clock.run(), _guided(model, args) as call:
                try:
                    frames = pipe(**call, generator=generator, callback_on_step_end=on_step_end).frames[0]
                except (Canceled, GroupBroken):
                    raise
                except Exception as exc:
                    if self.group is not None and self.group.lost_peer(exc):
                        raise GroupBroken(
                            f"rank {self.group.rank}: a peer of the group is gone ({exc})"
                        ) from exc
                    raise
            if not decode:
                continue
            if extension is not None and kept is not None:  # the source's frames, then the new ones
                new = finish_frames(frames[extension.context :], extension.size, watermark)
                videos.append(np.concatenate([kept, new]))
            elif edit is not None:  # the made region, with the source laid back over the rest
                videos.append(finish_frames(frames[: edit.frames], edit.size, watermark, keep=edit))
            else:
                videos.append(finish_frames(frames, request.output_size or (width, height), watermark))

        return Generation(
            videos=videos,
            seeds=seeds,
            preset=preset,
            width=videos[0].shape[2] if videos else width,
            height=videos[0].shape[1] if videos else height,
            num_frames=len(videos[0]) if videos else num_frames,
            fps=preset.fps,
            steps=steps,
            timings=clock.timings,
            loras=request.loras,
            source_frames=len(extension.source) if extension else edit.frames if edit else 0,
        )


def warm_up_inputs(preset: Preset) -> list[tuple[bytes | None, bytes | None]]:
    """The (first, last) frames whose shapes a job can bring to the transformer: none (text alone), a
    first frame (LTX and Wan 2.2 then give per-token timesteps) and both (LTX's keyframe tokens,
    FLF2V's second image), each that the preset serves."""
    from PIL import Image

    gray = io.BytesIO()
    Image.new("RGB", preset.size_for(preset.aspect_ratios[0]), (128, 128, 128)).save(gray, "PNG")
    image = gray.getvalue()
    inputs: list[tuple[bytes | None, bytes | None]] = []
    if preset.missing(frozenset({Capability.TEXT})) is None:
        inputs.append((None, None))
    if not preset.vace:  # VACE takes them as a control video, whose shape is the text call's
        if preset.missing(frozenset({Capability.FIRST_FRAME})) is None:
            inputs.append((image, None))
        if preset.missing(frozenset({Capability.FIRST_FRAME, Capability.LAST_FRAME})) is None:
            inputs.append((image, image))
    return inputs


@contextmanager
def _guided(model: LoadedModel, args: dict) -> Iterator[dict]:
    """The call's arguments with cached prompt embeddings, and the batched-guidance wrappers told
    which two embeddings this call's passes use."""
    if model.prompts is None:
        yield args
        return
    call = {k: v for k, v in args.items() if k not in ("prompt", "negative_prompt")}
    guided = args["guidance_scale"] > 1  # diffusers' rule: guidance 1 runs no unconditional pass
    call.update(model.prompts.arguments(args["prompt"], args["negative_prompt"], guided))
    if guided:
        for guidance in model.guidance:
            guidance.expect(call["prompt_embeds"], call["negative_prompt_embeds"])
    try:
        yield call
    finally:
        for guidance in model.guidance:
            guidance.expect()


def finish_frames(
    frames: torch.Tensor,
    size: tuple[int, int],
    watermark: Watermark | None,
    chunk: int = 16,
    keep: Edit | None = None,
) -> np.ndarray:
    """Frames (T, 3, H, W), float in [0, 1] or uint8 → uint8 (T, height, width, 3) for the encoder, where the
    frames are: scaled to cover `size` and center-cropped (bicubic with antialiasing, so downscales
    do not alias and nothing is stretched), an edit's source laid back outside its region, watermarked,
    rounded. In chunks, so that only the output is held at full size."""
    width, height = size
    source_h, source_w = frames.shape[2:]
    scale = max(width / source_w, height / source_h)
    cover = (max(height, round(source_h * scale)), max(width, round(source_w * scale)))
    if keep is not None:  # an edit's pass saw the source stretched to its size: stretch it back
        cover = (height, width)
    top, left = (cover[0] - height) // 2, (cover[1] - width) // 2
    pattern = None
    if watermark is not None:
        offsets = watermark_pattern(watermark.key, watermark.payload, height, width)
        pattern = torch.from_numpy(offsets).to(frames.device)
    kept, region = keep.tensors(frames.device) if keep is not None else (None, None)
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for start in range(0, len(frames), chunk):
        batch = frames[start : start + chunk].float()
        if frames.dtype == torch.uint8:
            batch /= 255.0
        if cover != (source_h, source_w):
            batch = F.interpolate(batch, size=cover, mode="bicubic", antialias=True, align_corners=False)
            batch = batch[..., top : top + height, left : left + width]
        batch = batch.clamp(0.0, 1.0) * 255.0
        if kept is not None and region is not None:
            batch = batch * region + kept[start : start + len(batch)].float() * (1.0 - region)
        if pattern is not None:
            batch = batch + pattern
        pixels = batch.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        out[start : start + chunk] = pixels.cpu().numpy()
    return out


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8))


class StageClock:
    """Times text encoding, denoising and VAE decode inside a stock diffusers call, through module hooks.

    Denoising runs from the first denoiser forward to the last step callback; whatever follows until the
    call returns is the VAE decode. On CUDA each mark synchronises, so the numbers are real GPU time.
    """

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.timings = {"text_encoding": 0.0, "denoising": 0.0, "vae_decode": 0.0}
        self._cuda = model.device.type == "cuda"
        self._text_started = 0.0
        self._denoise_started: float | None = None
        self._last_step = 0.0

    def _now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize(self.model.device)
        return time.perf_counter()

    def _text_pre(self, *_args) -> None:
        self._text_started = self._now()

    def _text_post(self, *_args) -> None:
        self.timings["text_encoding"] += self._now() - self._text_started

    def _denoiser_pre(self, *_args) -> None:
        if self._denoise_started is None:
            self._denoise_started = self._now()

    def step_ended(self) -> None:
        self._last_step = self._now()

    @contextmanager
    def run(self) -> Iterator[None]:
        self._denoise_started = None
        encoder = self.model.pipe.text_encoder
        handles = [
            encoder.register_forward_pre_hook(self._text_pre),
            encoder.register_forward_hook(self._text_post),
            *(m.register_forward_pre_hook(self._denoiser_pre) for m in self.model.denoisers),
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        if self._denoise_started is not None:
            self.timings["denoising"] += self._last_step - self._denoise_started
            self.timings["vae_decode"] += self._now() - self._last_step

"""Model presets: what each open model can make and how to drive it. Pure data, no torch.

The numbers follow each model's published inference settings (the Wan 2.1 / 2.2 and LTX-Video
reference code and their diffusers model cards). Frame counts obey the VAE's temporal compression:
Wan packs 4 frames per latent (4k+1 frames), LTX packs 8 (8k+1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

# 4 to 8 s: Veo 2 makes 5-8 s and Veo 3.x 4, 6 or 8; each is a valid frame count of the frame rule.
DEFAULT_DURATIONS = (4, 5, 6, 7, 8)
DEFAULT_DURATION_S = 5  # what a request without a duration gets where the model makes it (Segmind's)
# An extension starts its pass on at least this many of the source's last frames (Wan: the first
# frame alone, then two latent groups of 4), so that it continues the motion, not just one still.
MIN_CONTEXT_FRAMES = 9


class UnknownModel(LookupError):
    """A model name that is neither a preset nor an alias."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown model {name!r}; choose one of: {', '.join(known)}")
        self.name = name
        self.known = known


class Capability(StrEnum):
    """What a request can ask of a preset besides its prompt; the request's inputs decide which it
    needs (docs/api.md has the table of which Veo field needs which)."""

    TEXT = "text"  # a video from the prompt alone
    FIRST_FRAME = "first_frame"  # starts on a given image
    LAST_FRAME = "last_frame"  # ends on a given image (after a given first frame)
    REFERENCE_IMAGES = "reference_images"  # shows the subjects or objects of up to 3 given images
    EXTEND = "extend"  # continues a given video from its last frames
    MASK = "mask"  # remakes a given video inside a mask: insert or remove an object, outpaint


_TEXT = frozenset({Capability.TEXT})
_TEXT_OR_IMAGE = frozenset({Capability.TEXT, Capability.FIRST_FRAME})
_IMAGE = frozenset({Capability.FIRST_FRAME})
_FIRST_AND_LAST = frozenset({Capability.FIRST_FRAME, Capability.LAST_FRAME})
_KEYFRAMES = frozenset({Capability.TEXT, Capability.FIRST_FRAME, Capability.LAST_FRAME, Capability.EXTEND})
_ALL = frozenset(Capability)


class MissingCapability(LookupError):
    """A request needs something its model cannot do; `serving` names the presets that can."""

    def __init__(self, preset: Preset, capability: Capability, serving: list[str], required: bool) -> None:
        self.preset = preset
        self.capability = capability
        self.serving = serving
        self.required = required  # the preset cannot run without it (an image-to-video model's image)
        super().__init__(f"{preset.name} {'needs' if required else 'cannot take'} {capability}")


@dataclass(frozen=True)
class Backbone:
    """The shape of a preset's transformer blocks: a LoRA trained on one shape loads into any preset
    of that shape (a fast preset and its base share theirs), and into no other."""

    family: str  # "wan" | "ltx"
    dim: int  # hidden width (attention heads x head size)
    layers: int  # transformer blocks

    def __str__(self) -> str:
        return f"{self.family} transformer {self.dim} wide with {self.layers} blocks"


@dataclass(frozen=True)
class Distillation:
    """A distillation LoRA a fast preset fuses into its base weights when it loads."""

    repo: str  # Hugging Face repo id ("tiny": built offline for the tiny presets)
    file: str
    rank: int
    into: str = "transformer"  # Wan 2.2 A14B: the low-noise expert's goes into "transformer_2"
    scale: float = 1.0


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # "wan" | "ltx": decides the pipeline call arguments
    pipeline: str  # diffusers class loaded from the weights: text-to-video, or image-to-video if needs_image
    i2v_pipeline: str | None  # diffusers class for image-to-video on the same weights; None = unsupported
    repo: str  # Hugging Face repo id (tiny presets: the architecture name they are built from)
    sizes: Mapping[str, tuple[int, int]]  # aspect ratio → (width, height), the model's native sizes
    fps: int
    frame_multiple: int  # frames = k * frame_multiple + 1
    dim_multiple: int  # width and height must be multiples of this (VAE stride × patch size)
    steps: int
    guidance: float
    price_per_second: float  # credits per second of video
    backbone: Backbone  # the transformer's block shape, which decides the LoRAs it takes
    base: str | None = None  # the preset whose weights this one starts from (a fast preset's base)
    shift: float | None = None  # flow-matching shift for the scheduler, when the model wants one set
    guidance_2: float | None = None  # Wan 2.2 A14B: guidance of the low-noise expert
    boundary: float | None = None  # Wan 2.2 A14B: the high-noise expert runs while t >= boundary x 1000
    # A distilled preset samples at its publisher's fixed timesteps (engine/samplers.py):
    # sigma = shift(t / 1000), Euler steps, or DMD's re-noising between steps when `renoise`.
    timesteps: tuple[float, ...] | None = None
    renoise: bool = False
    distillation: tuple[Distillation, ...] = ()
    # LTX-Video 0.9.1 and later (their VAE decodes at a timestep, with a little noise), as Lightricks run it:
    guidance_rescale: float | None = None  # rescales the guided prediction toward the text one's spread
    decode_timestep: float | None = None
    decode_noise_scale: float | None = None
    image_cond_noise_scale: float | None = None  # noise on the conditioning frames' latents per step
    source: str = ""  # where the recipe comes from (docs/fast-presets.md)
    durations: tuple[int, ...] = DEFAULT_DURATIONS
    capabilities: frozenset[Capability] = _TEXT
    # What it cannot run without: an image-to-video model's first frame, FLF2V's last frame as well.
    requires: frozenset[Capability] = frozenset()
    max_steps: int = 100
    tiny: bool = False
    description: str = ""

    @property
    def aspect_ratios(self) -> tuple[str, ...]:
        return tuple(self.sizes)

    @property
    def needs_image(self) -> bool:
        """An image-to-video model only: its pipeline is the image one, loaded from the weights."""
        return Capability.FIRST_FRAME in self.requires

    @property
    def supports_image(self) -> bool:
        return Capability.FIRST_FRAME in self.capabilities

    @property
    def supports_text(self) -> bool:
        """Makes a video from the prompt alone (an image-to-video-only model needs a first frame)."""
        return Capability.TEXT in self.capabilities

    def missing(self, needs: frozenset[Capability]) -> tuple[Capability, bool] | None:
        """The first capability a request with `needs` lacks here (True: one the preset requires and
        the request does not give), or None when the preset serves it."""
        for capability in Capability:
            if capability in self.requires and capability not in needs:
                return capability, True
        for capability in Capability:
            if capability in needs and capability not in self.capabilities:
                return capability, False
        return None

    @property
    def vace(self) -> bool:
        """Conditions through a control video, its mask and reference images (Wan VACE): the one call
        that takes a first or last frame, the frames a video is extended from, and references."""
        return self.pipeline == "WanVACEPipeline"

    @property
    def keyframes(self) -> bool:
        """Conditions on images or clips placed at frames of the video (LTX-Video's condition
        pipeline): a first frame at 0, a last frame at the end, a source's last frames at 0 to extend it."""
        return self.pipeline == "LTXConditionPipeline"

    @property
    def default_duration(self) -> int:
        return DEFAULT_DURATION_S if DEFAULT_DURATION_S in self.durations else self.durations[0]

    @property
    def trained_frames(self) -> int:
        """The longest pass it was made for: its longest duration's frames."""
        return self.frames_for(max(self.durations))

    @property
    def max_extension_s(self) -> int:
        """The most whole seconds one extension adds: a pass of `trained_frames` that starts on at
        least `MIN_CONTEXT_FRAMES` of the source's last frames."""
        return (self.trained_frames - MIN_CONTEXT_FRAMES) // self.fps

    def edit_frames(self, source_frames: int) -> int:
        """The frames of the one pass that edits a video of `source_frames` (at most `trained_frames`):
        the fewest the frame rule allows that hold them all (the last frame repeats to fill)."""
        groups = -(-(source_frames - 1) // self.frame_multiple)
        return max(1, groups) * self.frame_multiple + 1

    def extension_frames(self, duration_s: int, source_frames: int) -> tuple[int, int]:
        """(context, new) of the one pass that extends a video of `source_frames` by `duration_s`:
        the new frames come in whole latent groups, and the source's last frames fill the rest of a
        `trained_frames` pass (fewer when the source is shorter), so the pass keeps the frame rule."""
        new = max(1, round(duration_s * self.fps / self.frame_multiple)) * self.frame_multiple
        context = min(self.trained_frames - new, source_frames)
        context -= (context - 1) % self.frame_multiple
        return context, new

    def size_for(self, aspect_ratio: str) -> tuple[int, int]:
        return self.sizes[aspect_ratio]

    def frames_for(self, duration_s: float) -> int:
        """The valid frame count whose length is closest to the requested duration."""
        k = max(1, round((duration_s * self.fps - 1) / self.frame_multiple))
        return k * self.frame_multiple + 1

    def cost(self, duration_s: float, num_videos: int = 1) -> float:
        return round(self.price_per_second * duration_s * num_videos, 6)


def _sizes(landscape: tuple[int, int], square: int | None = None) -> dict[str, tuple[int, int]]:
    w, h = landscape
    sizes = {"16:9": (w, h), "9:16": (h, w)}
    if square:
        sizes["1:1"] = (square, square)
    return sizes


_WAN: dict[str, Any] = dict(family="wan", pipeline="WanPipeline", frame_multiple=4)
_LIGHTNING = "lightx2v/Wan2.2-Lightning"
_LIGHTNING_T2V = "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1"
_LIGHTNING_I2V = "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1"
# Image-to-video only: the transformer takes the first frame's latents beside the noise (36 channels).
_WAN_I2V: dict[str, Any] = dict(
    family="wan",
    pipeline="WanImageToVideoPipeline",
    i2v_pipeline="WanImageToVideoPipeline",
    capabilities=_IMAGE,
    requires=_IMAGE,
    frame_multiple=4,
)
# First and last frame (Wan 2.1 FLF2V): CLIP features of both images, with learned positions for the
# pair (514 tokens), and the VAE latents of both frames beside the noise; it cannot run with one.
_WAN_FLF2V: dict[str, Any] = _WAN_I2V | dict(capabilities=_FIRST_AND_LAST, requires=_FIRST_AND_LAST)
# Wan VACE: the Wan 2.1 text-to-video network with control blocks that read a control video (kept
# frames and gray ones), its mask (black: keep, white: make) and reference images laid in front;
# one call for text, first and last frames, references and extension. Wan's generate.py samples
# VACE with shift 16, 50 steps, guidance 5, 81 frames (diffusers' examples use shift 3-5 instead).
_WAN_VACE: dict[str, Any] = dict(
    family="wan",
    pipeline="WanVACEPipeline",
    i2v_pipeline=None,
    capabilities=_ALL,
    frame_multiple=4,
    durations=(5,),  # 81 frames, the length Wan's VACE code is written for
)
_VACE_RECIPE: dict[str, Any] = dict(fps=16, dim_multiple=16, steps=50, guidance=5.0, shift=16.0)
_LTX: dict[str, Any] = dict(
    family="ltx",
    pipeline="LTXPipeline",
    i2v_pipeline="LTXImageToVideoPipeline",
    capabilities=_TEXT_OR_IMAGE,
    frame_multiple=8,
)
# LTX-Video 0.9.5 and later through diffusers' LTXConditionPipeline: text, an image at any frame
# (the first, and the last as a keyframe the video reaches) and a clip at frame 0 (an extension).
# Their VAE decodes at timestep 0.05 with noise 0.025 (Lightricks' configs/ltxv-13b-0.9.7-*.yaml and
# 0.9.8-*.yaml: decode_timestep, decode_noise_scale); diffusers' LTX docs run the conditions without
# the per-step noise on them (image_cond_noise_scale 0.0). Sizes are multiples of 32, 8k+1 frames.
_LTX_CONDITION: dict[str, Any] = dict(
    family="ltx",
    pipeline="LTXConditionPipeline",
    i2v_pipeline=None,
    capabilities=_KEYFRAMES,
    frame_multiple=8,
    dim_multiple=32,
    decode_timestep=0.05,
    decode_noise_scale=0.025,
    image_cond_noise_scale=0.0,
)
# Lightricks/LTX-Video inference.py and README (0.9.6 on): 1216x704, at 30 fps by default. The model
# takes its frame rate as an input (its positions in time scale by 1 / frame_rate); 24 fps is served
# here, the rate diffusers' LTX examples export at, because at 30 fps no 8k+1 frame count lasts 5 or
# 6 s (150 and 180 frames), which Veo's and Segmind's 5-8 s need; at 24 fps every whole second does.
_LTXV_13B: dict[str, Any] = dict(backbone=Backbone("ltx", 4096, 48), sizes=_sizes((1216, 704)), fps=24)
# What the tiny Wan test presets share: a 24-wide, 2-block network at 160x96, 8 fps, 4 steps.
_TINY_WAN: dict[str, Any] = dict(
    backbone=Backbone("wan", 24, 2),
    sizes=_sizes((160, 96), square=96),
    fps=8,
    steps=4,
    price_per_second=0.01,
    tiny=True,
)
# ...and the tiny LTX ones: a 32-wide, 1-block network, guidance 3.
_TINY_LTX: dict[str, Any] = _TINY_WAN | dict(backbone=Backbone("ltx", 32, 1), guidance=3.0)

_BASES: tuple[Preset, ...] = (
    Preset(
        name="wan2.1-t2v-1.3b",
        backbone=Backbone("wan", 1536, 30),
        **_WAN,
        i2v_pipeline=None,
        repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
        sizes=_sizes((832, 480)),
        fps=16,
        dim_multiple=16,
        steps=50,
        guidance=5.0,
        shift=3.0,
        price_per_second=0.05,
        description="Wan 2.1 text-to-video 1.3B, 480p; fits a 12 GB GPU.",
    ),
    Preset(
        name="wan2.1-t2v-14b",
        backbone=Backbone("wan", 5120, 40),
        **_WAN,
        i2v_pipeline=None,
        repo="Wan-AI/Wan2.1-T2V-14B-Diffusers",
        sizes=_sizes((1280, 720)),
        fps=16,
        dim_multiple=16,
        steps=50,
        guidance=5.0,
        shift=5.0,
        price_per_second=0.25,
        description="Wan 2.1 text-to-video 14B, 720p.",
    ),
    Preset(
        name="wan2.2-ti2v-5b",
        backbone=Backbone("wan", 3072, 30),
        **_WAN,
        i2v_pipeline="WanImageToVideoPipeline",
        capabilities=_TEXT_OR_IMAGE,
        repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
        sizes=_sizes((1280, 704)),
        fps=24,
        dim_multiple=32,
        steps=50,
        guidance=5.0,
        shift=5.0,
        price_per_second=0.1,
        description="Wan 2.2 text- and image-to-video 5B, 720p at 24 fps.",
    ),
    Preset(
        name="wan2.2-t2v-a14b",
        backbone=Backbone("wan", 5120, 40),
        **_WAN,
        i2v_pipeline=None,
        repo="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
        sizes=_sizes((1280, 720)),
        fps=16,
        dim_multiple=16,
        steps=40,
        guidance=4.0,
        guidance_2=3.0,
        boundary=0.875,
        shift=12.0,
        price_per_second=0.3,
        description="Wan 2.2 text-to-video, two 14B experts (high/low noise), 720p.",
    ),
    Preset(
        name="wan2.1-i2v-14b-480p",
        backbone=Backbone("wan", 5120, 40),
        **_WAN_I2V,
        repo="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        sizes=_sizes((832, 480)),
        fps=16,
        dim_multiple=16,
        steps=40,
        guidance=5.0,
        shift=3.0,
        price_per_second=0.25,
        description="Wan 2.1 image-to-video 14B, 480p (an image is required).",
    ),
    Preset(
        name="wan2.2-i2v-a14b",
        backbone=Backbone("wan", 5120, 40),
        **_WAN_I2V,
        repo="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
        sizes=_sizes((1280, 720)),
        fps=16,
        dim_multiple=16,
        steps=40,
        guidance=3.5,
        guidance_2=3.5,
        boundary=0.9,
        shift=5.0,
        price_per_second=0.3,
        description="Wan 2.2 image-to-video, two 14B experts (high/low noise), 720p (an image is required).",
    ),
    Preset(
        name="wan2.1-flf2v-14b-720p",
        backbone=Backbone("wan", 5120, 40),
        **_WAN_FLF2V,
        repo="Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
        sizes=_sizes((1280, 720)),
        fps=16,
        dim_multiple=16,
        steps=50,
        guidance=5.0,
        shift=16.0,
        durations=(5,),  # 81 frames, the length Wan's first-last-frame code is written for
        price_per_second=0.25,
        description="Wan 2.1 first-and-last-frame-to-video 14B, 720p (a first and a last image required).",
    ),
    Preset(
        name="wan2.1-vace-1.3b",
        backbone=Backbone("wan", 1536, 30),
        **_WAN_VACE,
        **_VACE_RECIPE,
        repo="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        sizes=_sizes((832, 480)),
        price_per_second=0.05,
        source="Wan-Video/Wan2.1 generate.py and wan/configs (vace-1.3B: 480p only)",
        description="Wan 2.1 VACE 1.3B, 480p: text, first/last frame, reference images, extension.",
    ),
    Preset(
        name="wan2.1-vace-14b",
        backbone=Backbone("wan", 5120, 40),
        **_WAN_VACE,
        **_VACE_RECIPE,
        repo="Wan-AI/Wan2.1-VACE-14B-diffusers",
        sizes=_sizes((1280, 720)),
        price_per_second=0.25,
        source="Wan-Video/Wan2.1 generate.py and wan/configs (vace-14B: 480p and 720p)",
        description="Wan 2.1 VACE 14B, 720p: text, first/last frame, reference images, extension.",
    ),
    Preset(
        name="ltx-video",
        backbone=Backbone("ltx", 2048, 28),
        **_LTX,
        repo="Lightricks/LTX-Video",
        sizes=_sizes((704, 480), square=512),
        fps=24,
        dim_multiple=32,
        steps=50,
        guidance=3.0,
        price_per_second=0.04,
        description="LTX-Video 2B, text- and image-to-video, fast; 480p at 24 fps.",
    ),
    Preset(
        name="ltxv-13b-0.9.7-dev",
        **_LTX_CONDITION,
        **_LTXV_13B,
        repo="Lightricks/LTX-Video-0.9.7-dev",
        steps=30,
        guidance=5.0,
        guidance_rescale=0.7,
        price_per_second=0.15,
        source="diffusers docs api/pipelines/ltx_video.md (0.9.7-dev: 30 steps, guidance 5.0, rescale 0.7); "
        "Lightricks/LTX-Video configs/ltxv-13b-0.9.7-dev.yaml and inference.py (decode, 1216x704)",
        description="LTX-Video 13B 0.9.7 dev: text, first and last frame (keyframes), extension; 704p.",
    ),
    Preset(
        name="ltxv-13b-0.9.8-distilled",
        **_LTX_CONDITION,
        **_LTXV_13B,
        repo="Lightricks/LTX-Video-0.9.8-13B-distilled",
        steps=8,
        timesteps=(1000, 993, 987, 981, 975, 909, 725, 0.03),
        guidance=1.0,
        price_per_second=0.05,
        source="diffusers docs api/pipelines/ltx_video.md (0.9.8-13B-distilled: these 8 timesteps, guidance "
        "1.0); Lightricks/LTX-Video configs/ltxv-13b-0.9.8-distilled.yaml (decode)",
        description="LTX-Video 13B 0.9.8 distilled, 8 steps: text, first and last frame, extension; 704p.",
    ),
    # Tiny random-weight pipelines of the real architectures: they make noise, for tests and offline demos.
    Preset(
        name="tiny-wan2.1",
        **_TINY_WAN,
        **_WAN,
        i2v_pipeline=None,
        repo="wan2.1",
        dim_multiple=16,
        guidance=5.0,
        shift=3.0,
        description="Tiny random Wan 2.1 (test model: abstract noise, not a real model).",
    ),
    Preset(
        name="tiny-wan2.2",
        **_TINY_WAN,
        **_WAN,
        i2v_pipeline="WanImageToVideoPipeline",
        capabilities=_TEXT_OR_IMAGE,
        repo="wan2.2",
        dim_multiple=32,
        guidance=5.0,
        shift=5.0,
        description="Tiny random Wan 2.2 TI2V (test model: abstract noise, not a real model).",
    ),
    Preset(
        name="tiny-wan2.1-i2v",
        **_TINY_WAN,
        **_WAN_I2V,
        repo="wan2.1-i2v",
        dim_multiple=16,
        guidance=5.0,
        shift=3.0,
        description="Tiny random Wan 2.1 I2V with its CLIP image encoder (test model, not a real model).",
    ),
    Preset(
        name="tiny-wan2.1-flf2v",
        **_TINY_WAN,
        **_WAN_FLF2V,
        repo="wan2.1-flf2v",
        dim_multiple=16,
        guidance=5.0,
        shift=16.0,
        description="Tiny random Wan 2.1 FLF2V, first and last frame (test model, not a real model).",
    ),
    Preset(
        name="tiny-wan2.1-vace",
        **_TINY_WAN,
        **_WAN_VACE,
        repo="wan2.1-vace",
        dim_multiple=16,
        guidance=5.0,
        shift=16.0,
        description="Tiny random Wan 2.1 VACE: references, frames, extension (test model, not a real model).",
    ),
    Preset(
        name="tiny-wan2.2-a14b",
        **_TINY_WAN,
        **_WAN,
        i2v_pipeline=None,
        repo="wan2.2-a14b",
        dim_multiple=16,
        guidance=4.0,
        guidance_2=3.0,
        boundary=0.875,
        shift=12.0,
        description="Tiny random Wan 2.2 A14B layout, two experts (test model, not a real model).",
    ),
    Preset(
        name="tiny-ltx",
        **_TINY_LTX,
        **_LTX,
        repo="ltx",
        dim_multiple=32,
        description="Tiny random LTX-Video (test model: abstract noise, not a real model).",
    ),
    Preset(
        name="tiny-ltx-condition",
        **_LTX_CONDITION,
        **_TINY_LTX,
        repo="ltx-condition",
        guidance_rescale=0.7,
        description="Tiny random LTX-Video 0.9.5+: keyframes, extension (test model, not a real model).",
    ),
)


def _fast(base: str, name: str, description: str, **recipe: Any) -> Preset:
    """A fast preset: its base's model (shape, sizes, fps, pipelines) with a distillation recipe,
    one transformer pass per step (guidance 1 on every expert)."""
    of = next(p for p in _BASES if p.name == base)
    guidance_2 = None if of.guidance_2 is None else 1.0
    return replace(
        of, name=name, base=base, guidance=1.0, guidance_2=guidance_2, description=description, **recipe
    )


_DMD = dict(steps=3, timesteps=(1000, 757, 522), renoise=True, shift=None)  # FastWan
_LIGHTX2V = dict(steps=4, timesteps=(1000, 750, 500, 250), shift=5.0)  # LightX2V, Wan2.2-Lightning

# Fast presets: the publishers' few-step distillations; each recipe and its source in
# docs/fast-presets.md, and checked against them in tests/engine/test_fast.py.
PRESETS: tuple[Preset, ...] = (
    *_BASES,
    _fast(
        "wan2.1-t2v-1.3b",
        "wan2.1-t2v-1.3b-fast",
        "Wan 2.1 1.3B, FastVideo's 3-step DMD distill (dense attention), 480p.",
        repo="FastVideo/FastWan-QAD-1.3B",
        price_per_second=0.02,
        source="FastVideo/FastWan-QAD-1.3B model card; FastVideo qad_wan2_1_mixkit/stage2_attn_qat_dmd.yaml",
        **_DMD,
    ),
    _fast(
        "wan2.2-ti2v-5b",
        "wan2.2-ti2v-5b-fast",
        "Wan 2.2 TI2V 5B, FastVideo's 3-step DMD distill (full attention), 720p at 24 fps.",
        repo="FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers",
        price_per_second=0.04,
        source="FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers card; fastvideo/configs/pipelines/wan.py",
        **_DMD,
    ),
    _fast(
        "wan2.1-t2v-14b",
        "wan2.1-t2v-14b-fast",
        "Wan 2.1 T2V 14B with LightX2V's 4-step step and CFG distillation LoRA, 480p.",
        sizes=_sizes((832, 480)),  # the LoRA's training size (LightX2V's config)
        distillation=(
            Distillation(
                "lightx2v/Wan2.1-Distill-Loras", "wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors", 64
            ),
        ),
        price_per_second=0.08,
        source="ModelTC/LightX2V configs/distill/wan21/wan_t2v_distill_lora_4step_cfg.json",
        **_LIGHTX2V,
    ),
    _fast(
        "wan2.2-t2v-a14b",
        "wan2.2-t2v-a14b-fast",
        "Wan 2.2 T2V A14B with Wan2.2-Lightning's 4-step LoRAs on both experts, 720p.",
        distillation=(
            Distillation(_LIGHTNING, f"{_LIGHTNING_T2V}/high_noise_model.safetensors", 64, "transformer"),
            Distillation(_LIGHTNING, f"{_LIGHTNING_T2V}/low_noise_model.safetensors", 64, "transformer_2"),
        ),
        price_per_second=0.1,
        source="ModelTC/Wan2.2-Lightning wan/configs/wan_t2v_A14B.py and wan/utils/fm_solvers_euler.py",
        **_LIGHTX2V,
    ),
    _fast(
        "wan2.1-i2v-14b-480p",
        "wan2.1-i2v-14b-480p-fast",
        "Wan 2.1 I2V 14B with LightX2V's 4-step step and CFG distillation LoRA, 480p (an image is required).",
        distillation=(
            Distillation(
                "lightx2v/Wan2.1-Distill-Loras", "wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors", 64
            ),
        ),
        price_per_second=0.08,
        source="ModelTC/LightX2V configs/distill/wan21/wan_i2v_distill_lora_4step_cfg.json",
        **_LIGHTX2V,
    ),
    _fast(
        "wan2.2-i2v-a14b",
        "wan2.2-i2v-a14b-fast",
        "Wan 2.2 I2V A14B with Wan2.2-Lightning's 4-step LoRAs on both experts, 720p (an image is required).",
        distillation=(
            Distillation(_LIGHTNING, f"{_LIGHTNING_I2V}/high_noise_model.safetensors", 64, "transformer"),
            Distillation(_LIGHTNING, f"{_LIGHTNING_I2V}/low_noise_model.safetensors", 64, "transformer_2"),
        ),
        price_per_second=0.1,
        source="ModelTC/Wan2.2-Lightning wan/configs/wan_i2v_A14B.py and wan/utils/fm_solvers_euler.py",
        **_LIGHTX2V,
    ),
    _fast(
        "tiny-wan2.1",
        "tiny-wan2.1-fast",
        "Tiny random Wan 2.1 sampled the FastWan (DMD) way (test model, not a real model).",
        price_per_second=0.005,
        **_DMD,
    ),
    _fast(
        "tiny-wan2.2",
        "tiny-wan2.2-fast",
        "Tiny random Wan 2.2 with a random distillation LoRA, LightX2V's schedule (test model).",
        distillation=(Distillation("tiny", "distill-rank8.safetensors", 8),),
        price_per_second=0.005,
        **_LIGHTX2V,
    ),
    _fast(
        "tiny-wan2.1-i2v",
        "tiny-wan2.1-i2v-fast",
        "Tiny random Wan 2.1 I2V with a random distillation LoRA, LightX2V's schedule (test model).",
        distillation=(Distillation("tiny", "distill-rank8.safetensors", 8),),
        price_per_second=0.005,
        **_LIGHTX2V,
    ),
    _fast(
        "tiny-wan2.2-a14b",
        "tiny-wan2.2-a14b-fast",
        "Tiny random two-expert Wan 2.2 with random LoRAs fused into both experts (test model).",
        distillation=(
            Distillation("tiny", "high-rank8.safetensors", 8, "transformer"),
            Distillation("tiny", "low-rank4.safetensors", 4, "transformer_2"),
        ),
        price_per_second=0.005,
        **_LIGHTX2V,
    ),
)


# The model names the wire protocols use; each points at the served model unless configured otherwise.
PROTOCOL_MODELS = (
    "veo-2",
    "veo-2.0-generate-001",
    "veo-2.0-generate-exp",
    "veo-2.0-generate-preview",  # Veo 2's editing model (masks) on Vertex
    # Veo 3.x ids (Vertex's model list); silent here until an audio model is served
    "veo-3.0-generate-001",
    "veo-3.1-generate-001",
    "veo-3.1-generate-preview",
    "veo-3.1-lite-generate-001",
    "veo-3",  # Segmind's Veo 3.x slugs (segmind.com/models/veo-3, veo-3.1, veo-3.1-lite)
    "veo-3.1",
    "veo-3.1-lite",
    "sora-2",
    "sora-2-pro",
)
# Google's fast model ids and Segmind's fast slugs (segmind.com/models/veo-3-fast, veo-3.1-fast): they run
# `fast_model` (OPENVEO_FAST_MODEL, a fast preset some worker serves), else the default model, so that
# they never queue work no worker takes.
FAST_PROTOCOL_MODELS = (
    "veo-3.0-fast-generate-001",
    "veo-3.1-fast-generate-001",
    "veo-3-fast",
    "veo-3.1-fast",
)
DEFAULT_MODEL = "wan2.2-ti2v-5b"
DEFAULT_ALIASES: Mapping[str, str] = MappingProxyType(
    {"tiny": "tiny-wan2.2", **dict.fromkeys(PROTOCOL_MODELS, DEFAULT_MODEL)}
)


class Catalog:
    """Presets plus aliases; the one place a model name is resolved."""

    def __init__(
        self,
        presets: tuple[Preset, ...] = PRESETS,
        aliases: Mapping[str, str] | None = None,
        default_model: str = DEFAULT_MODEL,
        fast_model: str | None = None,
        capability_models: Mapping[Capability, str] | None = None,
    ) -> None:
        self.presets = {p.name: p for p in presets}
        self.configured = dict(aliases or {})
        self.capability_models = dict(capability_models or {})
        fast = fast_model or default_model
        merged = {
            **DEFAULT_ALIASES,
            **dict.fromkeys(PROTOCOL_MODELS, default_model),
            **dict.fromkeys(FAST_PROTOCOL_MODELS, fast),
            **self.configured,
        }
        for alias, target in merged.items():
            if target not in self.presets and target not in merged:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
        self.aliases = merged
        self.default = self.resolve(default_model)
        for capability, target in self.capability_models.items():
            if capability not in self.resolve(target).capabilities:
                raise ValueError(f"capability model {target!r} cannot do {capability}")

    def resolve(self, name: str) -> Preset:
        seen: set[str] = set()
        while name in self.aliases and name not in seen:  # aliases may chain ("sora-2" → "tiny" → preset)
            seen.add(name)
            name = self.aliases[name]
        try:
            return self.presets[name]
        except KeyError:
            raise UnknownModel(name, self.names()) from None

    def route(self, name: str, needs: frozenset[Capability]) -> Preset:
        """The preset that makes a request naming `name` whose inputs need `needs`: the named one if it
        can; for an alias (a protocol model name) whose preset cannot, the preset configured for one of
        the capabilities needed. Raises `MissingCapability`, naming the presets that could."""
        preset = self.resolve(name)
        gap = preset.missing(needs)
        if gap is None:
            return preset
        if name in self.aliases:
            for capability in Capability:
                target = self.capability_models.get(capability)
                if capability in needs and target and self.resolve(target).missing(needs) is None:
                    return self.resolve(target)
        capability, required = gap
        # the presets of its own kind that could: real models for a real one, test models for a tiny one
        serving = [
            p.name for p in self.presets.values() if p.missing(needs) is None and p.tiny == preset.tiny
        ]
        raise MissingCapability(preset, capability, serving, required)

    def names(self) -> list[str]:
        return [*self.presets, *sorted(self.aliases)]

    def routed(self) -> list[str]:
        """The presets the protocols send jobs to: the default model (first), then the targets of the
        configured aliases."""
        names = (self.default.name, *self.configured.values(), *self.capability_models.values())
        return list(dict.fromkeys(self.resolve(name).name for name in names))

    def aliases_of(self, preset: str) -> list[str]:
        """Every alias that resolves to `preset`."""
        return sorted(alias for alias in self.aliases if self.resolve(alias).name == preset)

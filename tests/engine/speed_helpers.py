"""Shared by the speed tests: the plain diffusers call openveo must match, and how to compare.

Frames alone cannot show a guidance bug on the tiny models: their random transformers nudge the
starting noise only a little, so even a video made without guidance decodes to nearly the same
frames. The tests therefore compare the latents the VAE receives, against a tolerance that is a
small fraction of what guidance itself changes in them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import diffusers
import numpy as np
import PIL.Image
import torch

from openveo.bench.engine import psnr
from openveo.config import Settings
from openveo.core.catalog import Catalog
from openveo.core.request import GenerationRequest
from openveo.engine.engine import fit_image, to_uint8
from openveo.engine.pipelines import call_arguments, load_pipeline

__all__ = ["Reference", "baseline", "capture_latents", "psnr", "short_request"]

AGREEMENT = 1e-3  # allowed latent error, as a fraction of the guidance effect (fp32 rounding is ~1e-5)


def short_request(model: str, **fields) -> GenerationRequest:
    """One second of video: quick on a CPU, long enough for several latent frames."""
    return GenerationRequest(
        **{"prompt": "a lighthouse in a storm", "negative_prompt": "blurry", "model": model, "seed": 7,
           "duration_s": 1, **fields}
    )  # fmt: skip


def capture_latents(pipe) -> list[torch.Tensor]:
    """Every latent tensor the pipeline's VAE decodes from now on (observation only)."""
    seen: list[torch.Tensor] = []
    decode = pipe.vae.decode

    def observed(latents, *args, **kwargs):
        seen.append(latents.detach().float().clone())
        return decode(latents, *args, **kwargs)

    pipe.vae.decode = observed
    return seen


@dataclass
class Reference:
    frames: np.ndarray
    latents: torch.Tensor
    guidance_effect: float  # how far the latents move when guidance is switched off

    def assert_matches(self, latents: torch.Tensor) -> None:
        error = (latents - self.latents).abs().max().item()
        assert error <= AGREEMENT * self.guidance_effect, (error, self.guidance_effect)


def baseline(settings: Settings, request: GenerationRequest) -> Reference:
    """The stock pipeline, freshly loaded and called with the engine's arguments, with and without
    guidance."""
    preset = Catalog().resolve(request.model)
    pipe = load_pipeline(preset, settings.model_root, torch.float32, allow_download=False)
    pipe.set_progress_bar_config(disable=True)
    latents = capture_latents(pipe)

    def call(req: GenerationRequest) -> np.ndarray:
        width, height = preset.size_for(req.aspect_ratio)
        args = call_arguments(
            preset, prompt=req.prompt, negative_prompt=req.negative_prompt, width=width, height=height,
            num_frames=preset.frames_for(req.duration_s), steps=req.steps or preset.steps,
            guidance=preset.guidance if req.guidance is None else req.guidance, guidance_2=None,
        )  # fmt: skip
        call_pipe = pipe
        if preset.vace:  # diffusers' documented form: kept frames black in the mask, gray frames to make
            frames = [PIL.Image.new("RGB", (width, height), (128, 128, 128))] * args["num_frames"]
            masks = [PIL.Image.new("L", (width, height), 255)] * args["num_frames"]
            if req.image is not None:
                frames = [fit_image(req.image, width, height), *frames[1:]]
                masks = [PIL.Image.new("L", (width, height), 0), *masks[1:]]
            references = [PIL.Image.open(io.BytesIO(data)).convert("RGB") for data in req.reference_images]
            args.update(video=frames, mask=masks, reference_images=references or None)
        elif req.image is not None:
            call_pipe = getattr(diffusers, preset.i2v_pipeline).from_pipe(pipe)
            args["image"] = fit_image(req.image, width, height)
        if req.last_image is not None and not preset.vace:
            args["last_image"] = fit_image(req.last_image, width, height)
        generator = torch.Generator("cpu").manual_seed(req.seed)
        return to_uint8(call_pipe(**args, generator=generator).frames[0])

    frames = call(request)
    call(replace(request, guidance=1.0))
    effect = (latents[0] - latents[1]).abs().max().item()
    assert effect > 1e-2, "guidance must visibly move the latents, or the comparison proves nothing"
    return Reference(frames, latents[0], effect)

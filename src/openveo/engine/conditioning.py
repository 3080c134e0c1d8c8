"""What a generation is conditioned on besides its prompt, as a pipeline call takes it: the first and
last frames, reference images and, for an extension, the source video's last frames.

Wan VACE takes them all in one form (diffusers' `WanVACEPipeline`): a control video whose kept frames
are the given ones and the rest gray, a mask over it (black: keep, white: make), and reference images
that it lays in front of the video's latents."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from openveo.core.catalog import Preset
from openveo.core.media import MAX_SOURCE_S
from openveo.core.request import GenerationRequest
from openveo.engine.video import read_frames

GRAY = (128, 128, 128)  # a frame to make: 0 in the VAE's [-1, 1] range
KEEP, MAKE = 0, 255


class BadInput(ValueError):
    """The request's own input cannot be used (an image that does not decode): running it again
    would fail again. The message is for the client."""


@dataclass(frozen=True)
class Extension:
    """An extension's pass: it starts on the source's last `context` frames and makes `new` more; the
    answer is the whole source (its own frames, marked as this video) and then the new ones."""

    source: np.ndarray  # the whole source video, uint8 (frames, height, width, 3)
    context: int
    new: int

    @property
    def frames(self) -> int:
        return self.context + self.new

    @property
    def size(self) -> tuple[int, int]:
        """(width, height): the source's, which the answer keeps."""
        return self.source.shape[2], self.source.shape[1]

    @property
    def source_tensor(self) -> torch.Tensor:
        """The source as (frames, 3, height, width) uint8, as the frames are finished (a view, no copy)."""
        return torch.from_numpy(self.source).permute(0, 3, 1, 2)


def extension_of(request: GenerationRequest, preset: Preset) -> Extension | None:
    """The source video decoded, and how the pass continues it; None when the request extends nothing."""
    if request.source_video is None:
        return None
    try:
        source = read_frames(request.source_video, limit=int(MAX_SOURCE_S * preset.fps) + 1)
    except (OSError, ValueError) as exc:  # PyAV's errors are both
        raise BadInput(f"the source video could not be decoded ({exc})") from exc
    context, new = preset.extension_frames(request.duration_s, len(source))
    return Extension(source=source, context=context, new=new)


def vace_arguments(
    request: GenerationRequest, width: int, height: int, num_frames: int, extension: Extension | None
) -> dict[str, Any]:
    """A VACE call's `video`, `mask` and `reference_images`; none of them for text alone."""
    kept: dict[int, Image.Image] = {}
    if extension is not None:
        for index, frame in enumerate(extension.source[-extension.context :]):
            kept[index] = fit(Image.fromarray(frame), width, height)
    if request.image is not None:
        kept[0] = fit_image(request.image, width, height)
    if request.last_image is not None:
        kept[num_frames - 1] = fit_image(request.last_image, width, height)
    args: dict[str, Any] = {}
    if kept:
        size = (width, height)
        gray, keep, make = (
            Image.new("RGB", size, GRAY),
            Image.new("L", size, KEEP),
            Image.new("L", size, MAKE),
        )
        args["video"] = [kept.get(index, gray) for index in range(num_frames)]
        args["mask"] = [keep if index in kept else make for index in range(num_frames)]
    if request.reference_images:  # VACE letterboxes each onto a white canvas of the video's size
        args["reference_images"] = [open_image(data) for data in request.reference_images]
    return args


def open_image(data: bytes) -> Image.Image:
    """An input image upright (EXIF orientation applied) in RGB."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInput(f"the input image could not be decoded ({type(exc).__name__})") from exc


def fit_image(data: bytes, width: int, height: int) -> Image.Image:
    return fit(open_image(data), width, height)


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Center-crop to the video's aspect ratio, then resize with a high-quality filter."""
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)

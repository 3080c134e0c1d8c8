"""What a generation is conditioned on besides its prompt, as a pipeline call takes it: the first and
last frames, reference images, for an extension the source video's last frames, and for an edit the
source video with its mask.

Wan VACE takes them all in one form (diffusers' `WanVACEPipeline`): a control video whose kept frames
are the given ones and the rest gray, a mask over it (black: keep, white: make), and reference images
that it lays in front of the video's latents. LTX-Video's condition pipeline takes images and clips
placed at frames (`LTXVideoCondition`)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from openveo.core.catalog import Preset
from openveo.core.media import MAX_SOURCE_S, marked
from openveo.core.request import GenerationRequest, MaskMode
from openveo.engine.video import read_frames

GRAY = (128, 128, 128)  # a frame to make: 0 in the VAE's [-1, 1] range
KEEP, MAKE = 0, 255
SEAM_BLUR = 2.0  # px: the made region's edge is feathered over this radius when the source is laid back


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


@dataclass(frozen=True)
class Edit:
    """An edit's pass: the model remakes `region` of `kept` (the source where it stays, at the answer's
    size), and the answer is its frames with the source laid back over the rest. Insert and remove
    keep the source's size; an outpaint's canvas is the model's size, the source inside its box."""

    kept: np.ndarray  # uint8 (frames, height, width, 3): the source, or the canvas holding it
    region: np.ndarray  # float32 (height, width): 1 where the model makes the picture, 0 where kept

    @property
    def frames(self) -> int:
        return len(self.kept)

    @property
    def size(self) -> tuple[int, int]:
        return self.kept.shape[2], self.kept.shape[1]

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(kept as (frames, 3, H, W) uint8, region as (1, 1, H, W) float) for laying the source back."""
        kept = torch.from_numpy(self.kept).permute(0, 3, 1, 2).to(device)
        return kept, torch.from_numpy(self.region)[None, None].to(device)


def _source_frames(request: GenerationRequest, preset: Preset, limit: int | None = None) -> np.ndarray:
    """The source's frames, at most `limit` (a stream holding more than validation was told is refused)."""
    assert request.source_video is not None
    try:
        return read_frames(request.source_video, limit=limit or int(MAX_SOURCE_S * preset.fps) + 1)
    except (OSError, ValueError) as exc:  # PyAV's errors are both
        raise BadInput(f"the source video could not be decoded ({exc})") from exc


def extension_of(request: GenerationRequest, preset: Preset) -> Extension | None:
    """The source video decoded, and how the pass continues it; None when the request extends nothing."""
    if request.source_video is None or request.mask is not None:
        return None
    source = _source_frames(request, preset)
    context, new = preset.extension_frames(request.duration_s, len(source))
    return Extension(source=source, context=context, new=new)


def edit_of(request: GenerationRequest, preset: Preset) -> Edit | None:
    """The source video and its mask at the answer's size; None when the request edits nothing."""
    if request.source_video is None or request.mask is None:
        return None
    source = _source_frames(request, preset, limit=preset.trained_frames)  # one pass at most
    mask = open_image(request.mask).convert("L")
    if request.mask_mode != MaskMode.OUTPAINT:  # the mask covers the source: white is remade
        height, width = source.shape[1:3]
        made = mask.resize((width, height), Image.Resampling.BILINEAR)
        return Edit(kept=source, region=_region(made))
    width, height = preset.size_for(request.aspect_ratio)  # the mask is the canvas: its box holds the source
    scale_x, scale_y = width / mask.width, height / mask.height
    white = marked(mask).getbbox() or (0, 0, mask.width, mask.height)  # validation saw it mark a region
    left, top, right, bottom = white
    box = (round(left * scale_x), round(top * scale_y), round(right * scale_x), round(bottom * scale_y))
    frames = [Image.fromarray(frame) for frame in source]
    placed = ImageOps.contain(frames[0], (box[2] - box[0], box[3] - box[1]))  # whole, never cropped
    at = (box[0] + (box[2] - box[0] - placed.width) // 2, box[1] + (box[3] - box[1] - placed.height) // 2)
    canvas = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        page = Image.new("RGB", (width, height), GRAY)
        page.paste(frame.resize(placed.size, Image.Resampling.LANCZOS), at)
        canvas[index] = np.asarray(page)
    made = Image.new("L", (width, height), MAKE)
    made.paste(KEEP, (*at, at[0] + placed.width, at[1] + placed.height))
    return Edit(kept=canvas, region=_region(made))


def _region(mask: Image.Image) -> np.ndarray:
    """A mask as the weight of the made picture: its white region, with the edge feathered outward so
    the source laid back over the rest meets it without a seam."""
    binary = marked(mask)
    soft = binary.filter(ImageFilter.GaussianBlur(SEAM_BLUR))
    return np.maximum(np.asarray(binary), np.asarray(soft)).astype(np.float32) / 255.0


def vace_arguments(
    request: GenerationRequest,
    width: int,
    height: int,
    num_frames: int,
    extension: Extension | None,
    edit: Edit | None = None,
) -> dict[str, Any]:
    """A VACE call's `video`, `mask` and `reference_images`; none of them for text alone."""
    args: dict[str, Any] = {}
    if edit is not None:
        args["video"], args["mask"] = _edit_control(edit, width, height, num_frames)
    kept: dict[int, Image.Image] = {}
    if extension is not None:
        for index, frame in enumerate(extension.source[-extension.context :]):
            kept[index] = fit(Image.fromarray(frame), width, height)
    if request.image is not None:
        kept[0] = fit_image(request.image, width, height)
    if request.last_image is not None:
        kept[num_frames - 1] = fit_image(request.last_image, width, height)
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


def keyframe_arguments(
    request: GenerationRequest, width: int, height: int, num_frames: int, extension: Extension | None
) -> dict[str, Any]:
    """An LTX condition call's `conditions`: the first frame at frame 0, the last as a keyframe at
    the last frame, or an extension's context (the source's last frames, 8k+1 of them) at frame 0;
    none for text alone. Each is held exactly (strength 1)."""
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    conditions = []
    if extension is not None:
        context = [
            fit(Image.fromarray(frame), width, height) for frame in extension.source[-extension.context :]
        ]
        conditions.append(LTXVideoCondition(video=context, frame_index=0))
    if request.image is not None:
        conditions.append(LTXVideoCondition(image=fit_image(request.image, width, height), frame_index=0))
    if request.last_image is not None:
        last = fit_image(request.last_image, width, height)
        conditions.append(LTXVideoCondition(image=last, frame_index=num_frames - 1))
    return {"conditions": conditions} if conditions else {}


def _edit_control(
    edit: Edit, width: int, height: int, num_frames: int
) -> tuple[list[Image.Image], list[Image.Image]]:
    """An edit as VACE's control video (the kept picture, gray where it is remade) and its mask, at the
    pass's size; the last frame repeats to fill the frames the pass has beyond the source's. The source
    is stretched to the pass's size (at most ~5% off its shape), not cropped, so that the made frames
    stretch back onto it exactly (`finish_frames` with `keep`)."""
    size = (width, height)
    made = Image.fromarray((edit.region > 0).astype(np.uint8) * MAKE).resize(size, Image.Resampling.BILINEAR)
    made = marked(made)  # white (MAKE) where it is remade, black (KEEP) where kept
    gray = Image.new("RGB", (width, height), GRAY)
    video = []
    for index in range(num_frames):
        frame = Image.fromarray(edit.kept[min(index, edit.frames - 1)]).resize(size, Image.Resampling.LANCZOS)
        video.append(Image.composite(gray, frame, made))
    return video, [made] * num_frames


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

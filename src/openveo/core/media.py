"""Checks on a request's media inputs, read from their headers before anything is charged: a few
kilobytes can describe billions of pixels or hours of video, so sizes are checked before a pixel
decodes. Raises `InvalidRequest` naming the field."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av
from PIL import Image, ImageOps, UnidentifiedImageError

from openveo.core.errors import InvalidRequest

# 8K on the long side is more than any model here uses.
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 8192 * 8192
# A source video to extend: Veo takes 1 to 30 seconds.
MIN_SOURCE_S, MAX_SOURCE_S = 1.0, 30.0


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says about it."""

    width: int
    height: int
    fps: float
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def check_image(value: Any, field: str, max_bytes: int) -> bytes | None:
    """An input image's bytes, checked from the header (size, pixel count) before anything decodes it."""
    if value is None or value == b"":
        return None
    if not isinstance(value, bytes):
        raise InvalidRequest(field, "must be the bytes of a PNG, JPEG or WebP image")
    if len(value) > max_bytes:
        raise InvalidRequest(field, f"must be at most {max_bytes} bytes; got {len(value)}")
    too_large = (
        f"must be at most {MAX_IMAGE_SIDE} pixels on a side and {MAX_IMAGE_PIXELS} pixels in all; got "
    )
    try:
        with Image.open(io.BytesIO(value)) as img:  # reads the header only
            width, height = img.size
            if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(field, f"{too_large}{width}x{height}")
            img.verify()
    except Image.DecompressionBombError:  # past Pillow's own ceiling, far above ours
        raise InvalidRequest(field, f"{too_large}one far larger") from None
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidRequest(field, "is not a readable image; send a PNG, JPEG or WebP file") from None
    return value


def probe_video(value: Any, field: str, max_bytes: int) -> VideoInfo:
    """A video's size, frame rate and length from its container, with its first frame decoded to
    prove the stream is one this server reads."""
    if not isinstance(value, bytes) or not value:
        raise InvalidRequest(field, "must be the bytes of an MP4 video")
    if len(value) > max_bytes:
        raise InvalidRequest(field, f"must be at most {max_bytes} bytes; got {len(value)}")
    unreadable = InvalidRequest(field, "is not a readable video; send an MP4 (H.264) file")
    try:
        with av.open(io.BytesIO(value), mode="r") as container:
            if not container.streams.video:
                raise unreadable
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                raise InvalidRequest(
                    field, f"must be at most {MAX_IMAGE_SIDE} pixels on a side; got {width}x{height}"
                )
            rate = stream.average_rate or stream.guessed_rate
            frames = stream.frames
            if not frames and stream.duration is not None and stream.time_base is not None and rate:
                frames = round(float(stream.duration * stream.time_base * rate))
            if not rate or not frames or width <= 0 or height <= 0:
                raise unreadable
            next(container.decode(stream))
    except InvalidRequest:
        raise
    except (av.FFmpegError, OSError, ValueError, StopIteration):
        raise unreadable from None
    info = VideoInfo(width=width, height=height, fps=float(rate), frames=int(frames))
    if not MIN_SOURCE_S <= info.duration_s <= MAX_SOURCE_S:
        raise InvalidRequest(
            field, f"must be {MIN_SOURCE_S:g} to {MAX_SOURCE_S:g} seconds long; got {info.duration_s:.1f}"
        )
    return info


@dataclass(frozen=True)
class MaskBox:
    """A mask image's size and the box around its white region (left, top, right, bottom)."""

    width: int
    height: int
    box: tuple[int, int, int, int]

    @property
    def covers_all(self) -> bool:
        return self.box == (0, 0, self.width, self.height)


MASK_THRESHOLD = 128  # a mask pixel this light or lighter (in grayscale) marks the region


def marked(mask: Image.Image) -> Image.Image:
    """A grayscale mask as it is read: white (255) where it marks the region, black elsewhere."""
    return mask.point(lambda value: 255 if value >= MASK_THRESHOLD else 0)


def mask_box(data: bytes, field: str) -> MaskBox:
    """Where an (already checked) mask image marks its region; a mask that marks nothing is refused."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            gray = ImageOps.exif_transpose(img).convert("L")  # upright, as the engine reads it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest(field, "is not a readable image; send a PNG, JPEG or WebP file") from None
    box = marked(gray).getbbox()
    if box is None:
        raise InvalidRequest(field, "is black all over: white marks the region to edit")
    return MaskBox(width=gray.width, height=gray.height, box=box)

"""Frames → H.264 MP4 and a JPEG thumbnail, written atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from PIL import Image

AI_GENERATED = "AI-generated"


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` that replaces it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def video_metadata(model: str, seed: int) -> dict[str, str]:
    """Tags every video carries: it is AI-generated, by which model and seed."""
    return {
        "comment": f"{AI_GENERATED} by openveo (model {model}, seed {seed})",
        "ai_generated": "true",
        "openveo_model": model,
        "openveo_seed": str(seed),
    }


def write_mp4(
    frames: np.ndarray, path: Path, fps: int, *, crf: int = 18, metadata: Mapping[str, str] | None = None
) -> Path:
    """H.264 yuv420p with the index at the front (fast start), so browsers play it while downloading.

    The encode runs in a fresh child process. FFmpeg/x264 read some memory they never initialise
    (seen on PyAV 18 / x264 164): in a long-lived process that memory holds whatever the model left,
    and the same frames encode to different bytes. A fresh process starts from zeroed pages, so the
    output is byte-for-byte reproducible; it also keeps the encoder off the GPU process's heap. The
    child starts with `-P`, so a file in the user's working directory (a `types.py`) cannot shadow
    the standard library there.
    """
    count, height, width, _ = frames.shape
    job = {
        "fps": fps,
        "crf": crf,
        "width": width,
        "height": height,
        "count": count,
        "metadata": dict(metadata or {}),
    }
    with atomic_path(path) as tmp:
        child = subprocess.Popen(
            [sys.executable, "-P", "-m", "openveo.engine.video", str(tmp), json.dumps(job)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdin is not None and child.stderr is not None  # both are pipes
        try:
            child.stdin.write(np.ascontiguousarray(frames, dtype=np.uint8).data)
            child.stdin.close()
        except BrokenPipeError:
            pass  # the child failed early; its exit status and stderr say why
        error = child.stderr.read().decode(errors="replace").strip()
        if child.wait() != 0:
            raise VideoEncodeError(
                error.splitlines()[-1] if error else f"encoder exited with {child.returncode}"
            )
    return path


class VideoEncodeError(RuntimeError):
    """The encoder refused the frames; no file was written."""


def _encode(target: str, job: dict, raw: BinaryIO) -> None:
    width, height, fps = job["width"], job["height"], job["fps"]
    frame_bytes = width * height * 3
    options = {"movflags": "+faststart+use_metadata_tags"}
    with av.open(target, mode="w", format="mp4", options=options) as container:
        container.metadata.update(job["metadata"])
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(job["crf"]), "preset": "medium"}
        time_base = Fraction(1, fps)
        for index in range(job["count"]):
            rgb = np.frombuffer(raw.read(frame_bytes), dtype=np.uint8).reshape(height, width, 3)
            # Chroma is averaged over each 2x2 block (swscale's "area"), not sampled bilinearly: a
            # decoded video encoded again (an extension's source frames) then keeps ~3 dB more.
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", interpolation="AREA"
            )
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def read_frames(data: bytes, limit: int) -> np.ndarray:
    """A video's frames as uint8 (frames, height, width, 3), at most `limit` of them (its header was
    checked when the request came in; a stream that holds more than it said is refused)."""
    frames: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(container.streams.video[0]):
            if len(frames) == limit:
                raise ValueError(f"the video holds more than the {limit} frames its header declares")
            frames.append(to_rgb(frame))
    if not frames:
        raise ValueError("the video holds no frames")
    return np.stack(frames)


# Y'CbCr -> R'G'B' (limited range): BT.601, what x264 streams carry untagged (and what openveo writes),
# and BT.709 for streams tagged so.
_TO_RGB = {
    "bt601": np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]),
    "bt709": np.array([[1.0, 0.0, 1.5748], [1.0, -0.187324, -0.468124], [1.0, 1.8556, 0.0]]),
}
_BT709 = 1  # AVColorSpace


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame in RGB, rounded to nearest. swscale's own conversion truncates (about 1.2 levels
    darker on average), so a video decoded and encoded again would drift; an extension's source frames
    must come out as they went in. Formats other than limited-range 4:2:0 go through swscale."""
    if frame.format.name != "yuv420p" or getattr(frame, "color_range", 0) == 2:  # 2: full (JPEG) range
        return frame.to_ndarray(format="rgb24")
    height, width = frame.height, frame.width
    planes = frame.to_ndarray(format="yuv420p").astype(np.float32)
    luma = (planes[:height] - 16.0) * (255.0 / 219.0)
    chroma = planes[height:].reshape(2, height // 2, width // 2)
    chroma = (chroma.repeat(2, axis=1).repeat(2, axis=2) - 128.0) * (255.0 / 224.0)
    matrix = _TO_RGB["bt709" if getattr(frame, "colorspace", 0) == _BT709 else "bt601"].astype(np.float32)
    ycc = np.stack([luma, chroma[0], chroma[1]], axis=-1)
    return np.rint(ycc @ matrix.T).clip(0, 255).astype(np.uint8)


def write_thumbnail(frames: np.ndarray, path: Path, *, quality: int = 85) -> Path:
    """The middle frame: the first one of an image-to-video clip is just the input image."""
    with atomic_path(path) as tmp:
        Image.fromarray(frames[len(frames) // 2]).save(tmp, format="JPEG", quality=quality)
    return path


def write_spritesheet(
    frames: np.ndarray, path: Path, *, columns: int = 5, rows: int = 2, tile_width: int = 256
) -> Path:
    """Evenly spaced frames in a grid (a scrubbing preview), JPEG; tiles keep the video's aspect ratio."""
    count = columns * rows
    height, width = frames.shape[1:3]
    tile = (tile_width, max(2, round(tile_width * height / width)))
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    sheet = Image.new("RGB", (tile[0] * columns, tile[1] * rows))
    for slot, index in enumerate(picks):
        image = Image.fromarray(frames[index]).resize(tile, Image.Resampling.LANCZOS)
        sheet.paste(image, ((slot % columns) * tile[0], (slot // columns) * tile[1]))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="JPEG", quality=85)
    return path


if (
    __name__ == "__main__"
):  # the encoder child: python -m openveo.engine.video TARGET JOB_JSON < raw RGB frames
    try:
        _encode(sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer)
    except Exception as exc:
        sys.exit(f"video encode failed: {exc}")

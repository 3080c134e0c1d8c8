"""The invisible watermark: exact payload back from marked frames, survival of real ffmpeg
transformations (re-encode, downscale, crop), no detection on unmarked videos or with the wrong key,
and no crash on flat, black or tiny videos. Small videos, so the file runs in seconds."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from openveo.provenance.watermark import (
    FALSE_POSITIVE_RATE,
    PAYLOAD_BITS,
    Detection,
    detect,
    embed,
    watermark_pattern,
)
from tests.helpers import decode, required

KEY = b"test-deployment-key"
PAYLOAD = 0xA5C3_0F1E_9D2B_15FC


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse)


def bit_accuracy(found: int | None, payload: int = PAYLOAD) -> float:
    assert found is not None
    return 1 - bin(found ^ payload).count("1") / PAYLOAD_BITS


def _fractal(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """1/f noise, unit variance: natural-image-like texture."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    radius = np.maximum(np.hypot(fy, fx), 1.0 / max(height, width))
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius
    img = np.fft.irfft2(spectrum, s=(height, width))
    return (img - img.mean()) / img.std()


def scene(width: int, height: int, frames: int, seed: int = 0) -> np.ndarray:
    """A slow pan over a textured landscape with a smooth sky, a flat near-black shadow and a
    saturated red disc (clipping eats part of the mark there)."""
    rng = np.random.default_rng(seed)
    pan = 2
    canvas_w = width + pan * frames
    y = np.linspace(0, 1, height)[:, None, None]
    texture = _fractal(rng, height, canvas_w)[..., None]
    sky = np.array([110.0, 150.0, 230.0]) + 40 * y
    ground = np.array([100.0, 110.0, 70.0]) + 45 * texture
    canvas = np.where(y > 0.4, ground, sky + 0 * texture)
    canvas[int(0.75 * height) :, : canvas_w // 3] = 8.0
    yy, xx = np.ogrid[:height, :canvas_w]
    canvas[(yy - height * 0.6) ** 2 + (xx - canvas_w * 0.5) ** 2 < (height * 0.12) ** 2] = [255, 0, 0]
    canvas = np.clip(canvas, 0, 255)
    return np.stack([canvas[:, t * pan : t * pan + width] for t in range(frames)]).astype(np.uint8)


def moving_texture(width: int, height: int, frames: int, seed: int = 1) -> np.ndarray:
    """Busy, colourful texture sliding diagonally: content that changes every frame."""
    rng = np.random.default_rng(seed)
    big = np.stack([_fractal(rng, height + frames, width + frames) for _ in range(3)], -1)
    big = np.clip(128 + 50 * big, 0, 255)
    return np.stack([big[t : t + height, t : t + width] for t in range(frames)]).astype(np.uint8)


def gradient_with_bars(width: int, height: int, frames: int) -> np.ndarray:
    """Smooth gradients plus hard-edged moving bars: flat areas and strong edges."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        img = np.stack([x / width * 255, y / height * 255, np.full_like(x, 60.0)], -1)
        img[((x + 5 * t) // 24) % 4 == 0] = [250, 250, 250]
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        required("ffmpeg is not installed")
    return path


def write_mp4(frames: np.ndarray, path: Path, fps: int = 16, crf: int = 18) -> Path:
    """H.264 yuv420p, as openveo delivers its videos."""
    _, height, width, _ = frames.shape
    cmd = [
        ffmpeg(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-r", str(fps), "-i", "-", "-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=frames.tobytes(), check=True, timeout=120)
    return path


def transformed(src: Path, dst: Path, *args: str) -> np.ndarray:
    cmd = [ffmpeg(), "-v", "error", "-y", "-i", str(src), *args, "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    subprocess.run([*cmd, str(dst)], check=True, timeout=120)
    return decode(dst)["frames"]


# --- embedding -------------------------------------------------------------------------------------


def test_the_pattern_is_static_keyed_deterministic_and_cheap():
    start = time.perf_counter()
    pattern = watermark_pattern(KEY, PAYLOAD, 720, 1280)
    assert time.perf_counter() - start < 1.0
    assert pattern.shape == (720, 1280) and pattern.dtype == np.float32
    assert np.array_equal(pattern, watermark_pattern(KEY, PAYLOAD, 720, 1280))
    assert 1.5 < float(pattern.std()) < 3.0 and abs(float(pattern.mean())) < 0.2
    others = (watermark_pattern(b"another key", PAYLOAD, 720, 1280), watermark_pattern(KEY, 1, 720, 1280))
    for other in others:
        assert not np.array_equal(other, pattern)
        assert abs(np.corrcoef(other.ravel(), pattern.ravel())[0, 1]) < 0.9
    with pytest.raises(ValueError):
        watermark_pattern(KEY, 2**PAYLOAD_BITS, 96, 160)


def test_embed_is_round_and_clip_of_frames_plus_the_pattern_and_invisible():
    for frames in (scene(320, 192, 8), moving_texture(480, 832, 4), np.full((3, 96, 160, 3), 128, np.uint8)):
        marked = embed(frames, KEY, PAYLOAD)
        pattern = watermark_pattern(KEY, PAYLOAD, frames.shape[1], frames.shape[2])
        expected = np.clip(np.rint(frames.astype(np.float32) + pattern[None, :, :, None]), 0, 255)
        assert marked.dtype == np.uint8 and np.array_equal(marked, expected.astype(np.uint8))
        assert psnr(marked, frames) >= 40.5
        # the same offset on R, G and B wherever nothing clips (but for round-half-to-even ties)
        inside = (frames > 5).all(-1) & (frames < 250).all(-1)
        delta = marked.astype(int) - frames.astype(int)
        same = (delta[..., 0] == delta[..., 1]) & (delta[..., 1] == delta[..., 2])
        assert same[inside].mean() > 0.999


# --- detection of untouched marked frames ---------------------------------------------------------


@pytest.mark.parametrize(
    ("video", "payload"),
    [
        (lambda: scene(320, 192, 64), PAYLOAD),
        (lambda: moving_texture(320, 192, 64), 0),
        (lambda: gradient_with_bars(192, 320, 48), 2**64 - 1),  # portrait
        (lambda: scene(160, 96, 41, seed=3), 0x0123_4567_89AB_CDEF),  # the tiny test models' size
        (lambda: moving_texture(832, 480, 6), PAYLOAD),
    ],
    ids=["scene", "moving-texture", "portrait-bars", "tiny-160x96", "832x480-few-frames"],
)
def test_marked_frames_give_back_the_exact_payload(video, payload):
    frames = video()
    result = detect(embed(frames, KEY, payload), KEY)
    assert isinstance(result, Detection)
    assert result.found and result.payload == payload, result
    assert result.p_value < FALSE_POSITIVE_RATE and result.bit_confidence > 0.9
    assert result.transform == "none"
    assert abs(result.period - max(min(frames.shape[1:3]) / 3, 80)) < 1.0


def test_flips_and_quarter_turns_are_undone():
    marked = embed(moving_texture(320, 192, 24), KEY, PAYLOAD)
    for frames, name in (
        (marked[:, :, ::-1], "flip-h"),
        (marked[:, ::-1, ::-1], "rot180"),
        (np.ascontiguousarray(np.rot90(marked, k=1, axes=(1, 2))), "rot90"),
    ):
        result = detect(frames, KEY)
        assert result.found and result.payload == PAYLOAD and result.transform != "none", (name, result)


# --- robustness: real ffmpeg transformations --------------------------------------------------------


@pytest.fixture(scope="module")
def delivered_480p(tmp_path_factory) -> tuple[Path, Path]:
    """A marked and an unmarked 832x480 clip, 24 frames, delivered as openveo does (CRF 18)."""
    folder = tmp_path_factory.mktemp("wm480")
    frames = scene(832, 480, 24, seed=5)
    marked = write_mp4(embed(frames, KEY, PAYLOAD), folder / "marked.mp4")
    return marked, write_mp4(frames, folder / "plain.mp4")


TRANSFORMS = {
    "crf-28": ["-crf", "28"],
    "crop-10-centred": ["-vf", "crop=iw*0.9:ih*0.9"],
    "crop-10-corner": ["-vf", "crop=iw*0.9:ih*0.9:0:0"],
    "360p": ["-vf", "scale=-2:360"],
    "360p-crf-28": ["-vf", "scale=-2:360", "-crf", "28"],
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_the_payload_survives(delivered_480p, tmp_path, name):
    marked, _ = delivered_480p
    result = detect(transformed(marked, tmp_path / "out.mp4", *TRANSFORMS[name]), KEY)
    assert result.found, result
    assert bit_accuracy(result.payload) >= 0.95, result


def test_a_720p_video_downscaled_to_480p(tmp_path):
    frames = moving_texture(1280, 720, 8, seed=9)
    marked = write_mp4(embed(frames, KEY, PAYLOAD), tmp_path / "marked.mp4")
    video = transformed(marked, tmp_path / "480p.mp4", "-vf", "scale=-2:480")
    assert video.shape[1:3] == (480, 854)
    result = detect(video, KEY)
    assert result.found and bit_accuracy(result.payload) >= 0.95, result
    assert abs(result.period - 160) < 1.5  # the tile shrank with the frame


# --- no false positives ----------------------------------------------------------------------------


def test_unmarked_videos_and_the_wrong_key_find_nothing(delivered_480p, tmp_path):
    marked, plain = delivered_480p
    unmarked = [
        decode(plain)["frames"],
        transformed(plain, tmp_path / "plain-360p.mp4", "-vf", "scale=-2:360", "-crf", "28"),
        scene(320, 192, 64),
        moving_texture(320, 192, 64),
        gradient_with_bars(160, 96, 41),
    ]
    for frames in unmarked:
        result = detect(frames, KEY)
        assert not result.found and result.payload is None, result
        assert result.p_value > 1e-3, result  # far from the threshold, not just under it
        assert result.bit_confidence == 0.5 and result.payload_confidence == 0.0
    marked_frames = decode(marked)["frames"]
    for wrong in (b"another deployment", b"test-deployment-kez"):
        result = detect(marked_frames, wrong)
        assert not result.found and result.payload is None and result.p_value > 1e-3, result
    assert detect(marked_frames, KEY).found  # the right key on the same frames does


@pytest.mark.parametrize("value", [0, 16, 128, 255])
def test_flat_and_black_videos_do_not_crash_or_detect(value):
    flat = np.full((12, 96, 160, 3), value, np.uint8)
    result = detect(flat, KEY)
    assert not result.found and result.payload is None and result.p_value == 1.0
    # marked flat frames: black and white clip half of the mark away, but nothing breaks
    result = detect(embed(flat, KEY, PAYLOAD), KEY)
    if 0 < value < 255:
        assert result.found and result.payload == PAYLOAD, result


def test_degenerate_inputs():
    for frames in (np.zeros((0, 96, 160, 3), np.uint8), np.zeros((3, 4, 4, 3), np.uint8)):
        assert not detect(frames, KEY).found
    single = embed(scene(320, 192, 1), KEY, PAYLOAD)
    assert detect(single, KEY).payload == PAYLOAD  # one still frame is enough when nothing else happened
    with pytest.raises(ValueError):
        detect(np.zeros((2, 96, 160), np.uint8), KEY)

"""Helpers shared by tests: real inputs and the real command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

from openveo.core.job import JobResult, VideoFiles


def png_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A real, varied test image (gradient plus a seeded pattern), PNG-encoded."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = np.concatenate(
        [
            np.broadcast_to(x, (height, width, 1)),
            np.broadcast_to(y, (height, width, 1)),
            rng.integers(0, 256, (height, width, 1)).astype(np.float32),
        ],
        axis=2,
    )
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def job_result(*videos: VideoFiles, seconds_per_step: float | None = None) -> JobResult:
    """A worker's result as the tiny model leaves one, for queue tests that run no engine."""
    return JobResult(
        videos=videos, width=160, height=96, fps=8, num_frames=41, steps=4, seconds_per_step=seconds_per_step
    )


def required(reason: str) -> None:
    """A test whose tool or service is missing: skipped on a developer's machine, failed under CI=true,
    where everything must run."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """The real `openveo` command in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "openveo.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def decode(path: Path) -> dict:
    """Decode every frame of an MP4 with PyAV: what a player would see."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": float(stream.average_rate),
            "frames": np.stack(frames),
            "duration": float(container.duration / av.time_base),
            "metadata": dict(container.metadata),
        }


def make_tiny_loras(models_root: Path, folder: Path) -> dict[str, Path]:
    """Random LoRA files for the tiny models, saved as real safetensors: `style` (diffusers keys) and
    `motion` (Wan's own keys, as LightX2V and trainers save them) for tiny Wan; `ltx` for tiny LTX (a
    wrong base for Wan); `wide` (rank 16); `truncated` (a download cut short); `not-a-lora`."""
    import torch
    from diffusers import LTXVideoTransformer3DModel, WanTransformer3DModel
    from safetensors.torch import save_file

    from openveo.engine.tiny import ensure_tiny, random_lora, save_lora

    wan_dir = ensure_tiny("wan2.2", models_root / "tiny-wan2.2")
    wan = WanTransformer3DModel.from_pretrained(wan_dir, subfolder="transformer")
    ltx_dir = ensure_tiny("ltx", models_root / "tiny-ltx")
    ltx = LTXVideoTransformer3DModel.from_pretrained(ltx_dir, subfolder="transformer")
    original = random_lora(wan, 4, seed=2, key_format="original")
    files = {
        "style": save_lora(random_lora(wan, 4, seed=1), folder / "style.safetensors"),
        "motion": save_lora(original, folder / "motion.safetensors"),
        "ltx": save_lora(random_lora(ltx, 4, seed=3), folder / "ltx.safetensors"),
        "wide": save_lora(random_lora(wan, 16, seed=4), folder / "wide.safetensors"),
    }
    whole = files["style"].read_bytes()
    files["truncated"] = folder / "truncated.safetensors"
    files["truncated"].write_bytes(whole[: len(whole) - 100])
    files["not-a-lora"] = folder / "not-a-lora.safetensors"
    save_file({"weight": torch.zeros(4, 4)}, str(files["not-a-lora"]))
    return files


def credits_of(server, key: str) -> float:
    """A key's balance, as Segmind's credits route reports it."""
    import httpx

    return httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()["credits"]


def vertex_client(server, key: str):
    """google-genai 3.x (Vertex form) pointed at `server`."""
    from google import genai
    from google.genai import types

    return genai.Client(enterprise=True, api_key=key, http_options=types.HttpOptions(base_url=server.url))


def finished_native_job(server, key: str, job_id: str, timeout_s: float = 120) -> dict:
    """A native job (`GET /v1/jobs/ID`) once it has succeeded; fails the test if it fails or hangs."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while (job := httpx.get(f"{server.url}/v1/jobs/{job_id}", headers={"x-api-key": key}).json())[
        "status"
    ] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"job {job_id} never finished"
        time.sleep(0.2)
    assert job["status"] == "succeeded", job["error"]
    return job


def finished_operation(client, operation, timeout_s: float = 120):
    """A google-genai video operation once done; fails the test if it errs or hangs."""
    import time

    deadline = time.monotonic() + timeout_s
    while not operation.done:
        assert time.monotonic() < deadline, "the operation never finished"
        time.sleep(0.3)
        operation = client.operations.get(operation)
    assert operation.error is None, operation.error
    return operation


def mask_png(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """A mask image: black, with the white rectangle `box` (left, top, right, bottom)."""
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, box)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()

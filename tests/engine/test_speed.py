"""openveo's engine against the plain diffusers pipeline on the tiny models: the exact-output
optimizations must give the baseline's video (to float rounding), and each must really happen."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from pydantic import ValidationError

from openveo.config import Settings
from openveo.engine.engine import Engine
from openveo.engine.optimize import UnsupportedMode
from tests.conftest import TINY_PRESETS
from tests.engine.speed_helpers import baseline, capture_latents, psnr, short_request
from tests.helpers import png_bytes, run_cli

EXACT_DB = 45.0  # frames: fp32 on a CPU, batching the two guidance passes only reorders float sums


def engine_with(settings: Settings, catalog, **speed) -> Engine:
    return Engine(settings.model_copy(update=speed), catalog)


@pytest.mark.parametrize("model", TINY_PRESETS)
def test_exact_path_matches_plain_diffusers(settings, catalog, model):
    request = short_request(model)
    engine = engine_with(settings, catalog)
    latents = capture_latents(engine.load(model).pipe)
    ours = engine.generate(request).videos[0]
    reference = baseline(settings, request)
    reference.assert_matches(latents[0])
    assert ours.shape == reference.frames.shape
    assert psnr(reference.frames, ours) >= EXACT_DB
    assert ours.std() > 5  # real pictures of noise, not a flat frame that matches anything


def test_image_to_video_matches_plain_diffusers(settings, catalog):
    request = short_request("tiny-wan2.2", image=png_bytes(200, 120))
    engine = engine_with(settings, catalog)
    latents = capture_latents(engine.load("tiny-wan2.2").pipe)
    ours = engine.generate(request).videos[0]
    reference = baseline(settings, request)
    reference.assert_matches(latents[0])
    assert psnr(reference.frames, ours) >= EXACT_DB


@pytest.mark.parametrize(
    ("model", "inputs"),
    [
        ("tiny-wan2.1-flf2v", dict(image=png_bytes(200, 120), last_image=png_bytes(200, 120, 5))),
        ("tiny-wan2.1-vace", dict(image=png_bytes(200, 120), reference_images=(png_bytes(90, 90, 3),))),
    ],
)
def test_conditioned_passes_match_plain_diffusers(settings, catalog, model, inputs):
    """What a transformer takes per sample besides the noise must be doubled with it by batched
    guidance: FLF2V's two CLIP embeddings (as a pair, or the prompt and negative halves would mix
    each other's frames), VACE's control latents (a kept first frame, a reference laid in front)."""
    request = short_request(model, **inputs)
    engine = engine_with(settings, catalog)
    latents = capture_latents(engine.load(model).pipe)
    ours = engine.generate(request).videos[0]
    reference = baseline(settings, request)
    reference.assert_matches(latents[0])
    assert psnr(reference.frames, ours) >= EXACT_DB


def test_guidance_passes_run_as_one_batch(settings, catalog):
    request = short_request("tiny-wan2.1", steps=3)
    reference = baseline(settings, request)
    for batch_cfg, expected in ((True, [2, 2, 2]), (False, [1] * 6)):
        engine = engine_with(settings, catalog, batch_cfg=batch_cfg)
        model = engine.load("tiny-wan2.1")
        batches: list[int] = []
        model.denoisers[0].blocks[0].register_forward_pre_hook(
            lambda _m, a, seen=batches: seen.append(a[0].shape[0])
        )
        latents = capture_latents(model.pipe)
        engine.generate(request)
        assert batches == expected  # batched: prompt and negative prompt together, once per step
        reference.assert_matches(latents[0])


def test_prompt_embeddings_are_reused(settings, catalog):
    engine = engine_with(settings, catalog)
    encoder = engine.load("tiny-wan2.2").pipe.text_encoder
    calls: list[int] = []
    encoder.register_forward_pre_hook(lambda *_: calls.append(1))
    first = engine.generate(short_request("tiny-wan2.2", steps=2))
    assert len(calls) == 2  # the prompt and the negative prompt
    engine.generate(short_request("tiny-wan2.2", steps=2, prompt="a different prompt"))
    assert len(calls) == 3  # the negative prompt came from the cache
    again = engine.generate(short_request("tiny-wan2.2", steps=2))
    assert len(calls) == 3
    assert (again.videos[0] == first.videos[0]).all()


def test_step_cache_skips_work_and_costs_some_quality(settings, catalog):
    request = short_request("tiny-wan2.1", steps=12)
    results = {}
    for cache in ("none", "first-block:0.5"):
        engine = engine_with(settings, catalog, step_cache=cache)
        # A module inside the last block: it runs only when the block really computes.
        last_ffn = engine.load("tiny-wan2.1").denoisers[0].blocks[-1].ffn
        ran: list[int] = []
        last_ffn.register_forward_pre_hook(lambda *_, seen=ran: seen.append(1))
        results[cache] = (engine.generate(request).videos[0], len(ran))
    (exact, exact_blocks), (cached, cached_blocks) = results["none"], results["first-block:0.5"]
    assert exact_blocks == 12
    assert cached_blocks < exact_blocks  # some steps reused the cached residual
    assert (exact != cached).any()  # and the frames show it (a little: this model has only two blocks)
    assert cached.std() > 5


@pytest.mark.parametrize(
    ("speed", "message"),
    [
        ({"quantize": "fp8"}, "quantize=fp8 needs a CUDA GPU"),
        ({"offload": "model"}, "offload=model needs a CUDA GPU"),
    ],
)
def test_gpu_only_modes_say_so_on_a_cpu(settings, catalog, speed, message):
    with pytest.raises(UnsupportedMode, match=message):
        engine_with(settings, catalog, **speed).load("tiny-wan2.1")


@pytest.mark.parametrize(
    "value", ["magic", "first-block:2", "first-block:x", "taylorseer:1", "taylorseer:2.5"]
)
def test_bad_step_cache_settings_are_refused(value):
    with pytest.raises(ValidationError, match="step cache"):
        Settings(step_cache=value)


@pytest.mark.slow  # the real command in a process of its own, every mode
def test_bench_command_on_a_tiny_architecture(tmp_path, models_root):
    out = tmp_path / "results"
    result = run_cli(
        "bench", "--arch", "tiny-wan2.2", "--steps", "3", "--modes", "taylorseer,fast,fast+lora,fp8",
        "--out", str(out), env={"OPENVEO_DEVICE": "cpu"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [json_file] = out.glob("engine-*.json")
    results = json.loads(json_file.read_text())
    assert results["environment"]["device"].startswith("CPU")
    assert {"torch", "diffusers", "transformers"} <= set(results["environment"])
    runs = {run["mode"]: run for run in results["cases"][0]["runs"]}
    assert list(runs) == ["baseline", "openveo", "taylorseer", "fast", "fast+lora", "fp8"]
    assert float(runs["openveo"]["psnr_db"]) >= EXACT_DB
    # transformer passes, counted: 3 guided steps are 6 (batched or not); the fast recipe's 4 are 4
    assert [runs[m]["passes"] for m in ("baseline", "openveo", "fast", "fast+lora")] == [6, 6, 4, 4]
    assert runs["fast"]["psnr_db"] is None and runs["fast+lora"]["seconds"]["denoising"] > 0
    fp32, bf16 = results["cases"][0]["vae"]
    assert (fp32["dtype"], fp32["psnr_db"], bf16["dtype"]) == ("fp32", math.inf, "bf16")
    assert 20 < float(bf16["psnr_db"]) < math.inf and fp32["seconds"] > 0 and bf16["seconds"] > 0
    for mode in ("baseline", "openveo", "taylorseer"):
        stages = runs[mode]["seconds"]
        assert all(stages[s] > 0 for s in ("text_encoding", "denoising", "vae_decode", "mp4_encode"))
        assert stages["end_to_end"] >= stages["denoising"] + stages["vae_decode"]
    assert "fp8" in runs["fp8"]["skipped"]
    table = json_file.with_suffix(".md").read_text()
    assert "| openveo |" in table and "PSNR dB" in table and "| VAE decode alone |" in table


@pytest.mark.slow  # torch.compile of every served shape (a minute and more with a cold cache)
def test_compiled_engine_is_warmed_for_every_served_shape(settings, catalog):
    """Regional compile (inductor, on the CPU here) warmed up for every aspect ratio and duration:
    afterwards a job of any served shape compiles nothing, and its video is still the baseline's."""
    from torch._dynamo.utils import counters

    engine = engine_with(settings, catalog, compile="on")
    assert engine.warm_up("tiny-wan2.2")
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0
    request = short_request("tiny-wan2.2", duration_s=5, aspect_ratio="9:16", steps=3)
    latents = capture_latents(engine.load("tiny-wan2.2").pipe)
    engine.generate(request)
    assert counters["stats"]["unique_graphs"] == graphs  # no new graph: the warm-up covered this shape
    baseline(settings, request).assert_matches(latents[0])


@pytest.mark.slow  # torch.compile of three inputs' shapes
def test_a_compiled_keyframes_model_is_warmed_for_its_conditions_too(settings):
    """LTX's condition pipeline gives the transformer per-token timesteps for a first frame and extra
    tokens for a last one: the warm-up compiles those too, so such a job compiles nothing new."""
    from torch._dynamo.utils import counters

    from openveo.core.catalog import PRESETS, Catalog

    tiny = next(p for p in PRESETS if p.name == "tiny-ltx-condition")
    one_shape = replace(tiny, name="tiny-ltx-one-shape", sizes={"16:9": (160, 96)}, durations=(5,))
    catalog = Catalog(presets=(*PRESETS, one_shape))
    engine = engine_with(settings, catalog, compile="on")
    assert engine.warm_up(one_shape.name)
    graphs = counters["stats"]["unique_graphs"]
    request = short_request(one_shape.name, duration_s=5, steps=2)
    engine.generate(replace(request, image=png_bytes(seed=4), last_image=png_bytes(seed=5)))
    engine.generate(replace(request, image=png_bytes(seed=4)))
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.parametrize("model", ["tiny-wan2.2", "tiny-ltx"])
def test_image_to_video_shares_the_modules_in_their_dtypes(settings, catalog, model):
    """A GPU loads the transformer in bf16 (the Wan VAE in fp32); the image-to-video pipeline built on
    the same modules must leave both as they are (diffusers' from_pipe would cast all to fp32)."""
    import torch

    from openveo.engine.pipelines import load_pipeline, prepare

    preset = catalog.resolve(model)
    pipe = load_pipeline(preset, settings.model_root, torch.bfloat16, allow_download=False)
    vae_dtype = pipe.vae.dtype
    loaded = prepare(preset, pipe, torch.device("cpu"), settings)
    assert loaded.image_to_video is not None and loaded.image_to_video.transformer is pipe.transformer
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    assert pipe.vae.dtype == vae_dtype == (torch.float32 if preset.family == "wan" else torch.bfloat16)
    if preset.family == "wan":
        assert loaded.image_to_video.config.expand_timesteps == pipe.config.expand_timesteps


def test_the_vae_decodes_in_bf16_only_where_it_keeps_the_frames(settings, catalog, monkeypatch):
    """bf16 decoding is measured against fp32 on a probe latent and kept only above the threshold;
    the video then stays close to the fp32 one."""
    import torch

    from openveo.engine import optimize

    request = short_request("tiny-wan2.1")
    fp32 = engine_with(settings, catalog, vae_dtype="fp32")
    reference = fp32.generate(request).videos[0]
    kept = fp32.load("tiny-wan2.1")
    assert kept.vae_psnr_db is None and kept.pipe.vae.dtype == torch.float32

    bf16 = engine_with(settings, catalog, vae_dtype="bf16")
    loaded = bf16.load("tiny-wan2.1")
    assert loaded.pipe.vae.dtype == torch.bfloat16
    assert loaded.vae_psnr_db is not None and optimize.VAE_BF16_MIN_DB < loaded.vae_psnr_db < float("inf")
    assert psnr(reference, bf16.generate(request).videos[0]) >= optimize.VAE_BF16_MIN_DB

    # 'auto' (on a GPU; only the device check is bypassed here) keeps fp32 when bf16 falls short
    from openveo.engine.pipelines import load_pipeline

    preset = catalog.resolve("tiny-wan2.1")
    pipe = load_pipeline(preset, settings.model_root, torch.float32, allow_download=False)
    monkeypatch.setattr(optimize, "VAE_BF16_MIN_DB", loaded.vae_psnr_db + 1)
    assert optimize.vae_precision(pipe, "auto", torch.device("cuda")) == loaded.vae_psnr_db
    assert pipe.vae.dtype == torch.float32
    monkeypatch.setattr(optimize, "VAE_BF16_MIN_DB", loaded.vae_psnr_db - 1)
    optimize.vae_precision(pipe, "auto", torch.device("cuda"))
    assert pipe.vae.dtype == torch.bfloat16
    assert optimize.vae_precision(kept.pipe, "auto", torch.device("cpu")) is None  # CPUs: fp32
    assert kept.pipe.vae.dtype == torch.float32

"""LoRA adapters in the engine, on the tiny Wan model and random adapters saved as real safetensors:
they change the video, the same request gives the same bytes, and the base model comes back exactly."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from openveo.core.loras import LoraUse
from openveo.core.request import GenerationRequest
from openveo.engine.engine import Engine

MODEL = "tiny-wan2.2"


@pytest.fixture(scope="module")
def files(tiny_loras) -> dict[str, Path]:
    return {hashlib.sha256(path.read_bytes()).hexdigest(): path for path in tiny_loras.values()}


@pytest.fixture(scope="module")
def lora_engine(settings, catalog, files) -> Engine:
    return Engine(settings, catalog, lora_files=files.__getitem__)


def use(tiny_loras, name: str, scale: float = 1.0) -> LoraUse:
    return LoraUse(name, hashlib.sha256(tiny_loras[name].read_bytes()).hexdigest(), scale)


def video(engine: Engine, *loras: LoraUse, seed: int = 7) -> np.ndarray:
    request = GenerationRequest(prompt="a lantern in fog", model=MODEL, seed=seed, loras=loras)
    return engine.generate(request).videos[0]


def test_an_adapter_changes_the_video_and_the_base_model_comes_back_exactly(lora_engine, tiny_loras):
    base = video(lora_engine)
    styled = video(lora_engine, use(tiny_loras, "style"))
    assert not np.array_equal(styled, base)
    assert np.array_equal(video(lora_engine, use(tiny_loras, "style")), styled)  # same request, same bytes
    assert np.array_equal(video(lora_engine), base)  # no adapter: the base model's own bytes


def test_interleaved_adapters_each_give_their_own_video(lora_engine, tiny_loras):
    style, motion = use(tiny_loras, "style"), use(tiny_loras, "motion")
    first = {"style": video(lora_engine, style), "motion": video(lora_engine, motion)}
    both = video(lora_engine, style, motion)
    assert not np.array_equal(first["style"], first["motion"])
    assert not np.array_equal(both, first["style"]) and not np.array_equal(both, first["motion"])
    for name, adapter in (("motion", motion), ("style", style), ("motion", motion)):
        assert np.array_equal(video(lora_engine, adapter), first[name])


def test_the_scale_matters_and_zero_is_the_base_model(lora_engine, tiny_loras):
    full = video(lora_engine, use(tiny_loras, "style"))
    half = video(lora_engine, use(tiny_loras, "style", 0.5))
    assert not np.array_equal(full, half)
    assert np.array_equal(video(lora_engine, use(tiny_loras, "style", 0.0)), video(lora_engine))


def test_wans_own_key_names_load_as_the_same_adapter(lora_engine, settings, catalog, tiny_loras, tmp_path):
    """The same random weights saved in both key formats must make the same video: diffusers'
    converter maps `diffusion_model.blocks.0.self_attn.q.lora_down` onto `blocks.0.attn1.to_q.lora_A`."""
    import torch
    from diffusers import WanTransformer3DModel

    from openveo.engine.tiny import random_lora, save_lora

    transformer = WanTransformer3DModel.from_pretrained(
        settings.model_root / MODEL, subfolder="transformer", torch_dtype=torch.float32
    )
    paths = {
        fmt: save_lora(random_lora(transformer, 4, seed=9, key_format=fmt), tmp_path / f"{fmt}.safetensors")
        for fmt in ("diffusers", "original")
    }
    shas = {fmt: hashlib.sha256(path.read_bytes()).hexdigest() for fmt, path in paths.items()}
    engine = Engine(settings, catalog, lora_files={shas[f]: p for f, p in paths.items()}.__getitem__)
    made = {fmt: video(engine, LoraUse(fmt, shas[fmt])) for fmt in paths}
    assert np.array_equal(made["diffusers"], made["original"])


def test_adapters_beyond_the_resident_ones_are_loaded_again_correctly(
    lora_engine, settings, catalog, files, tiny_loras
):
    style, motion = use(tiny_loras, "style"), use(tiny_loras, "motion")
    expected = {"style": video(lora_engine, style), "motion": video(lora_engine, motion)}
    engine = Engine(settings, catalog, lora_files=files.__getitem__)
    adapters = engine.adapters(engine.load(MODEL))
    adapters.gpu_slots = 1  # every switch now drops the other adapter from the transformer
    for name, adapter in (("style", style), ("motion", motion), ("style", style)):
        assert np.array_equal(video(engine, adapter), expected[name])
        assert adapters.resident == [adapter.sha256]


def test_a_request_adapter_goes_on_top_of_a_fast_presets_fused_distillation(lora_engine, tiny_loras):
    def fast(*loras: LoraUse) -> np.ndarray:
        request = GenerationRequest(prompt="a lantern in fog", model="tiny-wan2.2-fast", seed=7, loras=loras)
        return lora_engine.generate(request).videos[0]

    distilled = fast()
    styled = fast(use(tiny_loras, "style"))
    assert not np.array_equal(styled, distilled)
    assert np.array_equal(fast(), distilled)  # the distilled model comes back exactly


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.slow
def test_a_compiled_transformer_switches_adapters_without_compiling_anything(
    lora_engine, settings, catalog, files, tiny_loras
):
    """torch.compile (inductor, as on a GPU) with the slot reserved: after the warm-up, base and
    adapter requests interleave with no new graph; each gets its own video, close to what the eager
    PEFT path makes of the same adapters (the slot sums the same updates in another order)."""
    import torch
    from torch._dynamo.utils import counters

    from openveo.engine.engine import BadInput

    compiled_settings = settings.model_copy(update={"compile": "on", "lora_max_rank": 8})
    engine = Engine(compiled_settings, catalog, lora_files=files.__getitem__)
    assert engine.warm_up(MODEL)
    graphs = counters["stats"]["unique_graphs"]
    style, motion = use(tiny_loras, "style"), use(tiny_loras, "motion")
    with torch._dynamo.config.patch(error_on_recompile=True):
        base = video(engine)
        made = {
            "style": video(engine, style),
            "motion": video(engine, motion),
            "half": video(engine, use(tiny_loras, "style", 0.5)),
            "both": video(engine, style, motion),
        }
        again = {"style": video(engine, style), "base": video(engine), "motion": video(engine, motion)}
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled after the warm-up

    assert np.array_equal(again["base"], base)  # the base model's exact bytes after adapters
    assert np.array_equal(again["style"], made["style"]) and np.array_equal(again["motion"], made["motion"])
    videos = [base, *made.values()]
    assert all(not np.array_equal(a, b) for i, a in enumerate(videos) for b in videos[i + 1 :])
    for name, loras in (("style", (style,)), ("motion", (motion,)), ("both", (style, motion))):
        assert psnr(made[name], video(lora_engine, *loras)) > 40, name

    with pytest.raises(BadInput, match="add up to 16; this worker's compiled slot holds rank 8"):
        video(engine, use(tiny_loras, "wide"))  # the job fails with this message, not retried
    assert np.array_equal(video(engine, style), made["style"])  # a refusal leaves the slot usable

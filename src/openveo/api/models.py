"""`GET /v1/models`: the models this deployment serves, with what each can do. The shape is OpenAI's
model list (`{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`), so its
SDK's `models.list()` works too, plus what a client needs to build a request (the playground does)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from openveo.api.jobs import MISSING_KEY
from openveo.api.state import state_of
from openveo.core.catalog import Capability, Preset
from openveo.service.workers import WorkerRegistry

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    state = state_of(request)
    await state.key(request, bearer=True, missing=MISSING_KEY)
    catalog = state.runtime.catalog
    serving = await run_in_threadpool(WorkerRegistry(state.runtime.db).serving)
    routed = catalog.routed()
    # A worker may serve a model this server's catalog lacks (a newer version elsewhere): skip it.
    names = [n for n in dict.fromkeys([*routed, *sorted(serving)]) if n in catalog.presets]
    data = [
        _model_json(catalog.presets[name], catalog.aliases_of(name), serving.get(name, 0), name == routed[0])
        for name in names
    ]
    return {"object": "list", "data": data}


def _model_json(preset: Preset, aliases: list[str], workers: int, default: bool) -> dict[str, Any]:
    return {
        "id": preset.name,
        "object": "model",
        "created": 0,
        "owned_by": "openveo",
        "description": preset.description,
        "aliases": aliases,
        "default": default,
        "workers": workers,
        "durations": list(preset.durations),
        "default_duration": preset.default_duration,
        "max_extension_s": preset.max_extension_s if Capability.EXTEND in preset.capabilities else None,
        "aspect_ratios": {ratio: f"{w}x{h}" for ratio, (w, h) in preset.sizes.items()},
        "fps": preset.fps,
        "text_to_video": preset.supports_text,
        "image_to_video": preset.supports_image,
        # what a request may give it, and what it cannot run without (docs/api.md)
        "capabilities": [c for c in Capability if c in preset.capabilities],
        "requires": [c for c in Capability if c in preset.requires],
        "price_per_second": preset.price_per_second,
        "test_model": preset.tiny,
    }


@router.get("/v1/loras")
async def list_loras(request: Request) -> dict[str, Any]:
    """The LoRA adapters requests may name (`loras`), and the models each fits. Where the files came
    from is the operator's business (`openveo loras list`), not the client's."""
    state = state_of(request)
    await state.key(request, bearer=True, missing=MISSING_KEY)
    catalog = state.runtime.catalog
    registered = await run_in_threadpool(state.runtime.loras.all)
    data = [
        {
            "name": lora.name,
            "object": "lora",
            "rank": lora.shape.rank,
            "price_per_second": state.settings.lora_price_per_second,  # on top of the model's
            "models": [preset.name for preset in catalog.presets.values() if lora.fits(preset)],
        }
        for lora in registered.values()
    ]
    return {"object": "list", "data": data}

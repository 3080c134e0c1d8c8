"""Segmind's API (`/v1/{slug}` sync, `/v2/{slug}` async, `/v1/get-user-credits`): see
api-contracts.md §1. Slugs are model names (`veo-2`, `veo-3.1`, any preset or alias); `<slug>-image2video`
is the same model with an input image required. The Veo 3.x slugs take Segmind's published fields
for them too (`last_frame`, `resolution`, `generate_audio`; 8 s by default). Every error is
`{"error": "..."}`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from openveo.api import schemas
from openveo.api.bodies import read_fields
from openveo.api.errors import ApiError, method_not_allowed
from openveo.api.resolutions import RESOLUTIONS
from openveo.api.routes import allowed_methods
from openveo.api.state import ApiState, state_of
from openveo.core.catalog import MissingCapability, UnknownModel
from openveo.core.job import Job, JobStatus
from openveo.core.request import needs_of
from openveo.service.billing import credits_text
from openveo.service.jobs import WAITER_RENEW_S, JobNotFound
from openveo.store.db import OUTAGE, first_line

router = APIRouter()
log = logging.getLogger("openveo.api")

MISSING_KEY = "Missing x-api-key in header"
IMAGE_SUFFIX = "-image2video"
# Segmind's field names → the shared request's.
WIRE_TO_FIELD = {"duration": "duration_s", "last_frame": "last_image", "resolution": "output_size"}
# A LoRA comes as Segmind's own LoRA endpoints name it: `lora` (here a registered adapter's name) and
# `lora_scale`; the shared request's `loras` list has that one adapter.
FIELD_TO_WIRE = {
    **{v: k for k, v in WIRE_TO_FIELD.items()},
    "loras": "lora",
    "loras[0]": "lora",
    "loras[0].name": "lora",
    "loras[0].scale": "lora_scale",
}
ALLOWED = (
    "prompt", "negative_prompt", "duration", "aspect_ratio", "seed", "image", "last_frame", "resolution",
    "generate_audio", "webhook_url", "lora", "lora_scale",
)  # fmt: skip
# Segmind's Veo 3.x pages (segmind.com/models/veo-3.1/api, ...): 4, 6 or 8 s, 8 by default.
VEO3_SLUGS = ("veo-3", "veo-3-fast", "veo-3.1", "veo-3.1-fast", "veo-3.1-lite")
VEO3_DEFAULT_DURATION_S = 8
SILENT = "generate_audio must be false: the open models here make silent video"
BODY = schemas.body(schemas.SEGMIND, files=("image", "last_frame"))
STATUS_WORDS = {JobStatus.QUEUED: "QUEUED", JobStatus.RUNNING: "PROCESSING", JobStatus.SUCCEEDED: "COMPLETED"}


def _model_for(request: Request, slug: str) -> tuple[str, bool]:
    """(model name, image required) for a slug. A path that is another route's answers that route's
    405 (`POST /v1/models`); a slug that names no model, 404."""
    routed = allowed_methods(request, exact_only=True)
    if routed and request.method not in routed:
        raise method_not_allowed(request, routed)
    name, needs_image = (slug[: -len(IMAGE_SUFFIX)], True) if slug.endswith(IMAGE_SUFFIX) else (slug, False)
    try:
        state_of(request).runtime.catalog.resolve(name)
    except UnknownModel:
        raise ApiError(404, f"unknown model {slug!r}; try veo-2 or veo-2-image2video") from None
    return name, needs_image


async def _submit(
    request: Request, slug: str, protocol: str, *, waited: bool = False
) -> tuple[ApiState, Any, Job]:
    state = state_of(request)
    model, needs_image = _model_for(request, slug)
    key = await state.key(request, missing=MISSING_KEY)
    wire = await read_fields(request, state.settings.max_body_bytes)
    unknown = sorted(set(wire) - set(ALLOWED))
    if unknown:
        raise ApiError(
            422, f"{unknown[0]} is not a field of {slug}; fields: {', '.join(ALLOWED)}", field=unknown[0]
        )
    if needs_image and not wire.get("image"):
        raise ApiError(422, f"image is required for {slug}: a file, a data URL, base64 or an http(s) URL")
    webhook_url = wire.pop("webhook_url", None) or None
    if wire.pop("generate_audio", None) not in (None, False, "false", "False", 0, "0", ""):
        raise ApiError(422, SILENT, field="generate_audio")
    _resolve_size(wire)
    lora, lora_scale = wire.pop("lora", None), wire.pop("lora_scale", None)
    if lora_scale not in (None, "") and lora in (None, ""):
        raise ApiError(422, "lora_scale needs a lora: the name of an adapter", field="lora_scale")
    fields = {WIRE_TO_FIELD.get(name, name): value for name, value in wire.items()}
    if lora not in (None, ""):
        fields["loras"] = [{"name": lora, "scale": lora_scale}]
    fields["model"] = model
    fields["image"] = await state.image(wire.get("image"))
    if wire.get("last_frame") not in (None, ""):
        fields["last_image"] = await state.image(wire["last_frame"], "last_frame")
    if slug.removesuffix(IMAGE_SUFFIX) in VEO3_SLUGS and fields.get("duration_s") in (None, ""):
        fields["duration_s"] = _veo3_default(state, model, fields)
    job = await state.submit(
        request,
        key,
        fields,
        protocol=protocol,
        wire_names=FIELD_TO_WIRE,
        webhook_url=webhook_url,
        waited=waited,
    )
    return state, key, job


def _veo3_default(state: ApiState, model: str, fields: dict[str, Any]) -> int | None:
    """Segmind's Veo 3.x default, 8 s, where the model the request routes to makes it (a 5 s
    first-and-last-frame model keeps its own)."""
    try:
        preset = state.runtime.catalog.route(model, needs_of(fields))
    except (UnknownModel, MissingCapability):
        return None  # the request's validation refuses it, naming the field
    return VEO3_DEFAULT_DURATION_S if VEO3_DEFAULT_DURATION_S in preset.durations else None


def _resolve_size(wire: dict[str, Any]) -> None:
    """`resolution` ("720p", "1080p") as the exact size for the aspect ratio asked for."""
    resolution = wire.get("resolution")
    if resolution in (None, ""):
        wire.pop("resolution", None)
        return
    sizes = RESOLUTIONS.get(str(resolution).lower())
    if sizes is None:
        raise ApiError(
            422, f"resolution must be one of {', '.join(RESOLUTIONS)}; got {resolution!r}", field="resolution"
        )
    aspect = wire.get("aspect_ratio") or "16:9"
    size = sizes.get(aspect) if isinstance(aspect, str) else None
    wire["resolution"] = None if size is None else f"{size[0]}x{size[1]}"  # others: the aspect is refused


@router.get("/v1/get-user-credits")
async def get_user_credits(request: Request) -> dict[str, float]:
    state = state_of(request)
    key = await state.key(request, missing=MISSING_KEY)
    return {"credits": key.credits}


@router.post("/v1/{slug}", openapi_extra=BODY)
async def run_sync(slug: str, request: Request) -> Response:
    """Blocks until the video is ready and answers with its bytes. A client that hangs up cancels
    (and is refunded for) its job."""
    state, key, job = await _submit(request, slug, "segmind-v1", waited=True)
    finished = None
    holding = asyncio.create_task(_hold(state, job.id))
    try:
        finished = await state.watcher.watch(job.id, lambda j: j.done, gone=request.is_disconnected)
    finally:
        holding.cancel()
        if finished is None:  # the client left (or the server is shutting down): nobody will get it
            with contextlib.suppress(JobNotFound):
                await asyncio.shield(run_in_threadpool(state.jobs.cancel, job.id))
    if finished is None:
        return Response(status_code=499)
    if finished.status != JobStatus.SUCCEEDED:
        raise ApiError(
            500,
            f"generation failed and was not charged: {finished.error or finished.status}",
            code="generation_failed",
        )
    video = await run_in_threadpool(state.read_file, finished)
    balance = await run_in_threadpool(state.jobs.balance, key.id)
    return Response(
        content=video,
        media_type="video/mp4",
        headers={
            "x-remaining-credits": credits_text(balance),
            "x-seed-value": str(finished.videos[0].seed),
            "x-request-id": finished.id,
            "x-generation-time": f"{finished.generation_time or 0.0:.3f}",
            "x-cost": credits_text(finished.cost),
        },
    )


async def _hold(state: ApiState, job_id: str) -> None:
    """Tell the queue this call still waits for its job, for as long as it does: if this server
    dies, the job is canceled and refunded instead of made for nobody (Jobs.recover)."""
    while True:
        await asyncio.sleep(WAITER_RENEW_S)
        try:
            await run_in_threadpool(state.jobs.hold, job_id)
        except OUTAGE as exc:
            log.warning("could not renew the wait on job %s: %s", job_id, first_line(exc))


@router.post("/v2/{slug}", openapi_extra=BODY)
async def submit_async(slug: str, request: Request) -> dict[str, Any]:
    state, _, job = await _submit(request, slug, "segmind-v2")
    urls = _urls(state.base_url(request), job.id)
    return {"request_id": job.id, "status": "QUEUED", "poll_url": urls["status_url"], **urls}


@router.get("/v2/requests/{request_id}/status")
async def request_status(request_id: str, request: Request) -> dict[str, Any]:
    state, job = await _owned_job(request, request_id)
    body: dict[str, Any] = {
        "request_id": job.id,
        "status": _status_word(job),
        **_urls(state.base_url(request), job.id),
    }
    body["metrics"] = {
        "progress": round(job.progress, 4),
        "queue_position": await run_in_threadpool(state.jobs.queue_position, job),
    }
    if body["status"] == "FAILED":
        body["error"] = _failure(job)
    return body


@router.get("/v2/requests/{request_id}")
async def request_result(request_id: str, request: Request) -> Response:
    state, job = await _owned_job(request, request_id)
    word = _status_word(job)
    if word == "FAILED":
        return JSONResponse(
            {"request_id": job.id, "status": "FAILED", "error": _failure(job)}, status_code=422
        )
    body: dict[str, Any] = {"request_id": job.id, "status": word}
    if word == "COMPLETED":
        body["output"] = state.file_url(state.base_url(request), job)
        body["metrics"] = {"inference_time": round(job.generation_time or 0.0, 3)}
        body["seed"] = job.videos[0].seed
    return JSONResponse(body)


@router.api_route("/v1/{slug}", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/v2/{slug}", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def wrong_method(slug: str, request: Request) -> Response:
    """A method that `/v1/{slug}` does not take, on a path that may be another route's (`/v1/videos`):
    then it is that route's 405, in its format."""
    _model_for(request, slug)
    raise method_not_allowed(request, ["POST"])


async def _owned_job(request: Request, request_id: str) -> tuple[ApiState, Job]:
    state = state_of(request)
    key = await state.key(request, missing=MISSING_KEY)
    return state, await state.owned_job(key, request_id, f"no request {request_id!r} for this key")


def _urls(base: str, job_id: str) -> dict[str, str]:
    return {
        "status_url": f"{base}/v2/requests/{job_id}/status",
        "response_url": f"{base}/v2/requests/{job_id}",
    }


def _status_word(job: Job) -> str:
    return STATUS_WORDS.get(job.status, "FAILED")


def _failure(job: Job) -> str:
    if job.status == JobStatus.CANCELED:
        return "the request was canceled; it was not charged"
    if job.status == JobStatus.FAILED:
        return f"generation failed; it was not charged: {job.error}"
    return "the result has expired; results are kept for a limited time"

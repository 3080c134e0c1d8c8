"""openveo's own job API, which the playground and other tools build on: create, get, list, cancel,
and live progress as server-sent events. Errors are `{"error": "..."}`; keys come as `x-api-key` or
`Authorization: Bearer`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from openveo.api import schemas
from openveo.api.bodies import read_fields
from openveo.api.errors import ApiError
from openveo.api.state import ApiState, state_of
from openveo.core.job import Billing, Job, JobStatus
from openveo.core.request import MEDIA_FIELDS, REFERENCES
from openveo.service.billing import to_credits
from openveo.service.jobs import JobNotFound
from openveo.service.keys import ApiKey
from openveo.service.webhooks import key_secret

router = APIRouter()

MISSING_KEY = "missing API key: send x-api-key or Authorization: Bearer"
MAX_PAGE = 100
KEEPALIVE_S = 15.0


def job_json(state: ApiState, base_url: str, job: Job, queue_position: int | None = None) -> dict[str, Any]:
    """The native representation of a job; status words are the core's own."""
    request = dataclasses.asdict(job.request)
    for internal in (*MEDIA_FIELDS, REFERENCES, "seed_was_random"):
        del request[internal]
    succeeded = job.status == JobStatus.SUCCEEDED
    return {
        "id": job.id,
        "object": "job",
        "status": job.status,
        "model": job.model,
        "protocol": job.protocol,
        "progress": round(job.progress, 4),
        "step": job.progress_step,
        "total_steps": job.progress_total,
        "queue_position": queue_position,
        "attempts": job.attempts,
        "cost": to_credits(job.cost),
        "charged": job.billing == Billing.CHARGED,
        "request": {**request, "has_image": job.has_image},
        "error": None if succeeded else job.error,
        "videos": [
            {
                "url": state.file_url(base_url, job, i),
                "thumbnail_url": state.file_url(base_url, job, i, "thumbnail"),
                "seed": video.seed,
            }
            for i, video in enumerate(job.videos if succeeded else ())
        ],
        "timings": dict(job.result.timings) if job.result else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "expires_at": job.expires_at,
    }


async def _key(request: Request) -> tuple[ApiState, ApiKey]:
    state = state_of(request)
    return state, await state.key(request, bearer=True, missing=MISSING_KEY)


def _missing(job_id: str) -> str:
    return f"no job {job_id!r} for this key"


async def _render(state: ApiState, request: Request, job: Job) -> dict[str, Any]:
    position = await run_in_threadpool(state.jobs.queue_position, job)
    return job_json(state, state.base_url(request), job, position)


@router.post(
    "/v1/jobs",
    status_code=201,
    openapi_extra=schemas.body(schemas.NATIVE, files=("image", "last_image", "source_video", "mask")),
)
async def create_job(request: Request) -> JSONResponse:
    state, key = await _key(request)
    fields = await read_fields(request, state.settings.max_body_bytes)
    webhook_url = fields.pop("webhook_url", None)
    fields.setdefault("model", state.settings.model)
    for name in ("image", "last_image", "mask"):
        if name in fields:
            fields[name] = await state.image(fields[name], name)
    if REFERENCES in fields:
        fields[REFERENCES] = await state.references(fields[REFERENCES])
    if "source_video" in fields:
        fields["source_video"] = await state.source_video(key, fields["source_video"])
    job = await state.submit(
        request,
        key,
        fields,
        protocol="native",
        webhook_url=webhook_url,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return JSONResponse(await _render(state, request, job), status_code=201)


@router.get("/v1/jobs")
async def list_jobs(request: Request, limit: int = 20, after: str | None = None) -> dict[str, Any]:
    state, key = await _key(request)
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(422, f"limit must be from 1 to {MAX_PAGE}; got {limit}", field="limit")
    try:
        page, more = await run_in_threadpool(state.jobs.page, key.id, limit=limit, after=after)
    except JobNotFound:
        raise ApiError(422, f"after: no job {after!r} for this key", field="after") from None
    base = state.base_url(request)
    return {
        "object": "list",
        "data": [job_json(state, base, job) for job in page],
        "has_more": more,
        "last_id": page[-1].id if page else None,
    }


@router.get("/v1/webhook-secret")
async def webhook_secret(request: Request) -> dict[str, str]:
    """The secret that signs this key's webhooks (Standard Webhooks `whsec_…`), to verify them with."""
    state, key = await _key(request)
    return {"secret": key_secret(state.runtime.secret, key.id)}


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    state, key = await _key(request)
    return await _render(state, request, await state.owned_job(key, job_id, _missing(job_id)))


@router.post("/v1/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    state, key = await _key(request)
    try:
        job = await run_in_threadpool(state.jobs.cancel, job_id, key.id)
    except JobNotFound:
        raise ApiError(404, _missing(job_id)) from None
    return await _render(state, request, job)


@router.get("/v1/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request) -> StreamingResponse:
    """Server-sent events: one `job` event with the full job each time it changes (queue position,
    every denoising step, the final state), then the stream ends."""
    state, key = await _key(request)
    await state.owned_job(key, job_id, _missing(job_id))

    async def stream() -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def emit(job: Job) -> None:
            body = json.dumps(await _render(state, request, job))
            await queue.put(f"event: job\ndata: {body}\n\n".encode())

        async def watch() -> None:
            try:
                await state.watcher.watch(
                    job_id, lambda j: j.done, gone=request.is_disconnected, on_change=emit
                )
            finally:
                await queue.put(None)

        task = asyncio.create_task(watch())
        getter: asyncio.Future | None = None
        try:
            while True:
                getter = getter or asyncio.ensure_future(queue.get())
                if not (await asyncio.wait({getter}, timeout=KEEPALIVE_S))[0]:
                    yield b": keep-alive\n\n"  # a queued job is quiet; proxies hang up on silence
                    continue
                event, getter = getter.result(), None
                if event is None:
                    break
                yield event
        finally:
            task.cancel()
            if getter is not None:
                getter.cancel()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

"""Operator endpoints: liveness and readiness probes for load balancers and orchestrators (open), and
what `openveo status` shows, behind OPENVEO_ADMIN_TOKEN (off when it is unset)."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from openveo.api.errors import ApiError
from openveo.api.state import state_of
from openveo.service.workers import WorkerRegistry
from openveo.store.db import OUTAGE, first_line

router = APIRouter()


@router.get("/v1/admin/status")
async def admin_status(request: Request) -> dict[str, Any]:
    """Workers (host, models, state, current job, last heartbeat), queue depth per model, the models
    that have queued jobs but no live worker, and recent failures."""
    state = state_of(request)
    token = state.settings.admin_token
    if not token:
        raise ApiError(404, "the admin endpoints are off; set OPENVEO_ADMIN_TOKEN to turn them on")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "admin endpoints need Authorization: Bearer OPENVEO_ADMIN_TOKEN")
    status = await run_in_threadpool(WorkerRegistry(state.runtime.db).status)
    return status.as_json()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and answering (it says nothing of the database or the workers)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers and every served model (the one the protocols' names point at,
    alias targets, and any with queued jobs) has a worker taking jobs, else 503 with the problems
    listed. A job for a model nobody serves waits in the queue; this says so."""
    state = state_of(request)
    try:
        readiness = await run_in_threadpool(
            WorkerRegistry(state.runtime.db).readiness, state.runtime.catalog.routed()
        )
        report = {**readiness.as_json(), "database": "ok"}
    except OUTAGE as exc:
        report = {"ready": False, "database": "unreachable", "models": {}, "problems": [first_line(exc)]}
    return JSONResponse(report, status_code=200 if report["ready"] else 503)

"""Operator endpoints, behind OPENVEO_ADMIN_TOKEN (off when it is unset): what `openveo status`
shows, for dashboards and other hosts."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from openveo.api.errors import ApiError
from openveo.api.state import state_of
from openveo.service.workers import WorkerRegistry

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
    return await run_in_threadpool(WorkerRegistry(state.runtime.db).status)

"""The FastAPI application. It imports no torch: generation happens in worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from openveo import __version__, logs
from openveo.api import (
    admin,
    errors,
    files,
    google,
    jobs,
    metrics,
    models,
    openai,
    playground,
    segmind,
    verify,
)
from openveo.api.state import ApiState
from openveo.api.watch import JobWatcher
from openveo.config import Settings
from openveo.core.job import Job, job_folder
from openveo.service.runtime import Runtime, open_runtime
from openveo.service.submit import open_submitter
from openveo.service.webhooks import Dispatcher, key_secret
from openveo.store.db import log_failure

log = logging.getLogger("openveo.api")

HOUSEKEEPING_S = 5.0


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or open_runtime(settings)
        watcher = JobWatcher(rt.jobs, rt.wakeups)
        watcher.start()
        state = ApiState(rt, watcher, open_submitter(rt))
        app.state.openveo = state
        tasks = [asyncio.create_task(_housekeeping(rt)), asyncio.create_task(_deliver_webhooks(state))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            watcher.stop()
            if runtime is None:
                rt.close()

    app = FastAPI(
        title="openveo",
        version=__version__,
        description="Self-hosted, open-model video generation behind the Veo 2 APIs.",
        lifespan=lifespan,
    )
    formats = errors.ErrorFormats()
    formats.add(openai.matches, openai.render_error)
    formats.add(google.matches, google.render_error)
    errors.install(app, formats)
    app.add_middleware(RequestIds)
    # Specific routes first: /v1/jobs and /v1/videos are not Segmind model slugs.
    app.include_router(openai.router)
    app.include_router(google.router)
    app.include_router(jobs.router)
    app.include_router(verify.router)
    app.include_router(models.router)
    app.include_router(playground.router)
    app.include_router(admin.router)
    app.include_router(metrics.router)
    app.include_router(files.router)
    app.include_router(segmind.router)
    return app


class RequestIds:
    """Tags everything logged while serving a request with its id: the caller's `X-Request-Id` (from a
    load balancer, say) or a new one. Plain ASGI, so streaming and disconnect detection stay intact."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:100]
        token = logs.request_id.set(given or logs.new_request_id())
        scope.setdefault("state", {})["request_id"] = logs.request_id.get()  # for the crash handler
        try:
            await self.app(scope, receive, send)
        finally:
            logs.request_id.reset(token)


async def _deliver_webhooks(state: ApiState) -> None:
    """Send due webhook deliveries; woken by job changes, and every second for retries."""
    runtime = state.runtime
    dispatcher = Dispatcher(
        runtime.db,
        render=lambda job_id: _webhook_data(state, runtime.jobs.get(job_id, include_deleted=True)),
        secret_for=lambda job_id: key_secret(
            runtime.secret, runtime.jobs.get(job_id, include_deleted=True).key_id
        ),
        first_retry_s=runtime.settings.webhook_retry_s,
        outbound=runtime.outbound,
    )
    while True:
        try:
            while await run_in_threadpool(dispatcher.run_due):
                pass
        except Exception:
            log_failure(log, "webhook delivery failed; will retry")
        await state.watcher.next_change(timeout=1.0)


def _webhook_data(state: ApiState, job: Job) -> dict[str, Any]:
    """A webhook carries the native job, with links as the client that submitted it reaches us."""
    return jobs.job_json(state, job.origin.base_url, job)


async def _housekeeping(runtime: Runtime) -> None:
    """Re-queue jobs of vanished workers, expire old queued jobs and results, delete expired files."""
    while True:
        try:
            for job_id in await run_in_threadpool(runtime.jobs.recover):
                await run_in_threadpool(runtime.blobs.delete_prefix, job_folder(job_id))
        except Exception:
            log_failure(log, "housekeeping failed; will retry")
        await asyncio.sleep(HOUSEKEEPING_S)

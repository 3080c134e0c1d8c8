"""Waiting for jobs to move without polling the database in a tight loop: workers ring this process
(see store/wakeups.py) whenever a job changes, and every waiter re-reads its job then. A slow timer
covers rings that never come."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from openveo.core.job import Job
from openveo.service.jobs import JobNotFound, Jobs
from openveo.store.db import OUTAGE, first_line
from openveo.store.wakeups import Bell, Wakeups

log = logging.getLogger("openveo.api")

FALLBACK_POLL_S = 0.5


class JobWatcher:
    def __init__(self, jobs: Jobs, wakeups: Wakeups) -> None:
        self.jobs = jobs
        self.wakeups = wakeups
        self._doorbell: Bell | None = None
        self._changed = asyncio.Event()

    def start(self) -> None:
        self._doorbell = self.wakeups.listen("api")
        asyncio.get_running_loop().add_reader(self._doorbell.fileno(), self._on_ring)

    def stop(self) -> None:
        if self._doorbell:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._doorbell.fileno())
            self._doorbell.close()

    def _on_ring(self) -> None:
        assert self._doorbell is not None
        self._doorbell.drain()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def next_change(self, timeout: float = FALLBACK_POLL_S) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def watch(
        self,
        job_id: str,
        until: Callable[[Job], bool],
        *,
        gone: Callable[[], Awaitable[bool]] | None = None,
        on_change: Callable[[Job], Awaitable[None]] | None = None,
    ) -> Job | None:
        """Re-read the job on every change until `until(job)`; None if `gone()` says the client left
        or the job was deleted."""
        last = None
        while True:
            waiting = asyncio.ensure_future(self.next_change())
            try:
                job = await run_in_threadpool(self.jobs.get, job_id)
            except JobNotFound:  # deleted while watched
                waiting.cancel()
                return None
            except OUTAGE as exc:  # the job goes on without us; so does the wait, once it is back
                log.warning("database unavailable while watching job %s: %s", job_id, first_line(exc))
                job = None
            if job is not None and on_change and job.updated_at != last:
                await on_change(job)
                last = job.updated_at
            if job is not None and until(job):
                waiting.cancel()
                return job
            if gone and await gone():
                waiting.cancel()
                return None
            await waiting

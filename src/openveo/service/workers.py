"""The worker registry: each worker process registers what it serves and beats every few seconds, so
`openveo status`, the admin endpoint and readiness can tell which models have a live worker."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update

from openveo.core.job import JobStatus
from openveo.store.db import Database
from openveo.store.schema import jobs, workers


class WorkerState(StrEnum):
    LOADING = "loading"  # loading its model (and compiling it for every shape it serves)
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"  # finishing its job, then stopping: it claims nothing new
    STOPPED = "stopped"


PRESENCE_S = 5.0  # how often a worker beats
SERVING_STATES = frozenset({WorkerState.IDLE, WorkerState.BUSY})
STALE_S = 3 * PRESENCE_S  # a worker silent this long is taken for gone
FORGET_S = 24 * 3600.0  # stopped or vanished workers are listed this long, then removed


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    models: list[str]
    device: str
    state: str
    current_job: str | None
    started_at: float
    heartbeat_at: float

    @property
    def live(self) -> bool:
        return self.state != WorkerState.STOPPED and self.heartbeat_at > time.time() - STALE_S

    @property
    def serving(self) -> bool:
        """Live and taking jobs."""
        return self.live and self.state in SERVING_STATES

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "live": self.live}


@dataclass(frozen=True)
class Failure:
    id: str
    model: str
    error: str | None
    finished_at: float


@dataclass(frozen=True)
class DeploymentStatus:
    """Workers (live or gone), queued jobs per model, the models queued for with no live worker, and
    the latest failures."""

    workers: list[WorkerInfo]
    queue: dict[str, int]
    waiting_without_worker: list[str]
    recent_failures: list[Failure]

    def as_json(self) -> dict[str, Any]:
        return {
            "workers": [worker.as_json() for worker in self.workers],
            "queue": self.queue,
            "waiting_without_worker": self.waiting_without_worker,
            "recent_failures": [dataclasses.asdict(failure) for failure in self.recent_failures],
        }


@dataclass(frozen=True)
class ModelReadiness:
    workers: int  # taking jobs
    queued: int


@dataclass(frozen=True)
class Readiness:
    ready: bool
    models: dict[str, ModelReadiness]
    problems: list[str]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class WorkerRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(self, worker_id: str, host: str, pid: int, models: list[str], device: str) -> None:
        now = time.time()
        with self.db.write() as conn:
            conn.execute(delete(workers).where(workers.c.heartbeat_at < now - FORGET_S))
            conn.execute(
                workers.insert().values(
                    id=worker_id,
                    host=host,
                    pid=pid,
                    models=json.dumps(models),
                    device=device,
                    state=WorkerState.LOADING,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def beat(self, worker_id: str, state: WorkerState, current_job: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(state=state, current_job=current_job, heartbeat_at=time.time())
            )

    def all(self) -> list[WorkerInfo]:
        with self.db.read() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.host, workers.c.started_at)).all()
        return [WorkerInfo(**{**row._mapping, "models": json.loads(row.models)}) for row in rows]

    def serving(self, known: list[WorkerInfo] | None = None) -> Counter[str]:
        """How many workers are taking jobs for each model (of `known`, else of every registered one)."""
        known = self.all() if known is None else known
        return Counter(model for worker in known if worker.serving for model in worker.models)

    def queue_depth(self) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(jobs.c.model, func.count())
                .where(jobs.c.status == JobStatus.QUEUED)
                .group_by(jobs.c.model)
            ).all()
        return {model: count for model, count in rows}

    def recent_failures(self, limit: int = 5) -> list[Failure]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.model, jobs.c.error, jobs.c.finished_at)
                .where(jobs.c.status == JobStatus.FAILED)
                .order_by(jobs.c.finished_at.desc())
                .limit(limit)
            ).all()
        return [Failure(row.id, row.model, row.error, row.finished_at) for row in rows]

    def status(self) -> DeploymentStatus:
        """Everything `openveo status` and the admin endpoint show."""
        known = self.all()
        queue = self.queue_depth()
        served = {model for worker in known if worker.live for model in worker.models}
        return DeploymentStatus(
            workers=known,
            queue=queue,
            waiting_without_worker=sorted(model for model in queue if model not in served),
            recent_failures=self.recent_failures(),
        )

    def readiness(self, routed: Iterable[str]) -> Readiness:
        """Ready when every model this deployment serves has a worker taking jobs. The served models
        are the ones the protocols route to (`routed`: the default model and alias targets) and any
        with queued jobs; a worker that served some other model and left changes nothing."""
        queue = self.queue_depth()
        models = set(routed) | set(queue)
        serving = self.serving()
        problems = [
            f"no worker is serving {model}" + (f" ({queue[model]} queued)" if queue.get(model) else "")
            for model in sorted(models)
            if not serving[model]
        ]
        return Readiness(
            ready=not problems,
            models={m: ModelReadiness(workers=serving[m], queued=queue.get(m, 0)) for m in sorted(models)},
            problems=problems,
        )

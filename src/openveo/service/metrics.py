"""The numbers behind `/metrics`, read from the database: jobs are finished by workers on any host, so
no single process sees them all, but the database does. Every API server therefore reports the same
deployment-wide numbers. Finished jobs are never deleted (only hidden), so the counts only grow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, case, cast, func, literal, select

from openveo.core.job import Billing, JobStatus
from openveo.service import refusals
from openveo.service.workers import WorkerRegistry
from openveo.store.db import Database
from openveo.store.schema import jobs

LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0)

# A finished job's outcome for good: a succeeded job whose result later expired still succeeded.
_OUTCOME = case((jobs.c.billing == Billing.CHARGED, literal(JobStatus.SUCCEEDED.value)), else_=jobs.c.status)


@dataclass(frozen=True)
class Histogram:
    """Per model: (cumulative counts at each bound of `bounds`, count, sum)."""

    bounds: Sequence[float]
    by_model: dict[str, tuple[list[int], int, float]]


@dataclass
class DeploymentStats:
    queued: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    finished: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, outcome) → jobs
    live_workers: dict[str, int] = field(default_factory=dict)
    charged_micro: int = 0
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS, {}))  # submit → video
    step: Histogram = field(default_factory=lambda: Histogram(STEP_BUCKETS, {}))  # seconds per step
    refused: dict[tuple[str, str], int] = field(default_factory=dict)  # (protocol, policy rule) → prompts


def deployment_stats(db: Database) -> DeploymentStats:
    stats = DeploymentStats()
    succeeded = jobs.c.billing == Billing.CHARGED
    with db.read() as conn:
        for model, status, count in conn.execute(
            select(jobs.c.model, jobs.c.status, func.count())
            .where(jobs.c.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
            .group_by(jobs.c.model, jobs.c.status)
        ):
            (stats.queued if status == JobStatus.QUEUED else stats.running)[model] = count
        for model, outcome, count in conn.execute(
            select(jobs.c.model, _OUTCOME, func.count())
            .where(jobs.c.finished_at.is_not(None))
            .group_by(jobs.c.model, _OUTCOME)
        ):
            stats.finished[(model, outcome)] = count
        stats.charged_micro = conn.execute(
            select(func.coalesce(func.sum(jobs.c.cost), 0)).where(succeeded)
        ).scalar_one()
        stats.latency = _histogram(conn, jobs.c.finished_at - jobs.c.created_at, LATENCY_BUCKETS, succeeded)
        stats.step = _histogram(conn, jobs.c.step_s, STEP_BUCKETS, succeeded & jobs.c.step_s.is_not(None))
    registry = WorkerRegistry(db)
    known = registry.all()
    serving = registry.serving(known)  # 0 for a model whose workers have all gone: an alert can fire on it
    stats.live_workers = {model: serving[model] for worker in known for model in worker.models}
    stats.refused = refusals.counts(db)
    return stats


def _histogram(
    conn: Connection, measure: ColumnElement[Any], bounds: Sequence[float], where: ColumnElement[bool]
) -> Histogram:
    value = cast(measure, Float)
    at_or_below = [func.sum(case((value <= bound, 1), else_=0)) for bound in bounds]
    query = (
        select(jobs.c.model, *at_or_below, func.count(), func.sum(value)).where(where).group_by(jobs.c.model)
    )
    by_model = {
        model: ([int(n or 0) for n in cumulative], int(count), float(total or 0.0))
        for model, *cumulative, count, total in conn.execute(query)
    }
    return Histogram(bounds, by_model)

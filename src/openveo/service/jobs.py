"""The job queue: one job model and its state machine (core/job.py), shared by every protocol and every
worker.

Each transition is one transaction that also settles the job's credits (see `billing`), so a job is
charged exactly once when it succeeds and refunded exactly once otherwise. Workers hold a lease on a
running job; `recover()` puts jobs whose worker vanished back in the queue (bounded attempts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from openveo.core.catalog import Catalog
from openveo.core.job import (
    Billing,
    Completion,
    Job,
    JobOrigin,
    JobResult,
    JobStatus,
    LeaseState,
    Settlement,
    new_job_id,
)
from openveo.core.request import GenerationRequest
from openveo.service import billing, webhooks
from openveo.service.keys import ApiKey
from openveo.store.db import Database
from openveo.store.schema import job_inputs, jobs


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run a job: the full request, its media inputs included."""

    job: Job
    request: GenerationRequest


@dataclass
class JobSignals:
    """Hooks that wake other processes; the queue stays correct without them, only slower."""

    queued: Callable[[], None] = lambda: None
    changed: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class QueuePolicy:
    lease_s: float = 30.0
    max_attempts: int = 3
    retention_s: float = 3600.0
    queue_timeout_s: float = 24 * 3600.0


class JobNotFound(LookupError):
    pass


MAX_IDEMPOTENCY_KEY = 200
CANCELED_BY_CLIENT = "canceled by the client"
# A synchronous call renews its job's waiter lease this often, for this long past each renewal.
# A worker may take a younger job over the oldest when it holds that job's LoRA adapters already (it
# saves loading them), among the queue's first PREFER_WINDOW jobs made within PREFER_WAIT_S of the oldest.
PREFER_WINDOW = 16
PREFER_WAIT_S = 10.0
WAITER_RENEW_S = 5.0
WAITER_GRACE_S = 20.0
NOBODY_WAITING = "the call waiting for this video ended before it was made (the server stopped); not charged"

# Every column but the image (up to 20 MB), which only the claiming worker reads.
_JOB_COLUMNS = (*(c for c in jobs.c if c.name != "image"), jobs.c.image.is_not(None).label("has_image"))


def _select_jobs() -> Select[Any]:
    return select(*_JOB_COLUMNS)


@dataclass
class Jobs:
    """Submitting, reading and cancelling jobs (API side) and claiming and finishing them (worker side)."""

    db: Database
    policy: QueuePolicy = field(default_factory=QueuePolicy)
    signals: JobSignals = field(default_factory=JobSignals)
    catalog: Catalog = field(default_factory=Catalog)  # prices every job
    lora_price_per_second: float = 0.0  # credits per adapter per second of video, on top of the model's

    # ---- API side -----------------------------------------------------------------------------

    def submit(
        self,
        key: ApiKey,
        request: GenerationRequest,
        *,
        protocol: str,
        origin: JobOrigin | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        waited: bool = False,
    ) -> Job:
        """Price the request, reserve its cost and queue it, in one transaction; a repeated
        `idempotency_key` returns the key's first job instead. Raises `InsufficientCredits`.
        `waited`: a synchronous call waits for it, and must keep saying so (`hold`)."""
        cost = billing.price(self.catalog.resolve(request.model), request, self.lora_price_per_second)
        now = time.time()
        job_id = new_job_id()
        try:
            with self.db.write() as conn:
                if idempotency_key:
                    existing = _by_idempotency_key(conn, key.id, idempotency_key)
                    if existing:
                        return existing
                conn.execute(
                    jobs.insert().values(
                        id=job_id,
                        key_id=key.id,
                        protocol=protocol,
                        model=request.model,
                        request=request.to_json(),
                        image=request.image,
                        origin=(origin or JobOrigin()).to_json(),
                        status=JobStatus.QUEUED,
                        cost=cost,
                        billing=Billing.RESERVED,
                        attempts=0,
                        progress_step=0,
                        progress_total=0,
                        cancel_requested=False,
                        webhook_url=webhook_url,
                        idempotency_key=idempotency_key,
                        loras=" ".join(use.sha256 for use in request.loras) or None,
                        waiter_until=now + WAITER_GRACE_S if waited else None,
                        created_at=now,
                        updated_at=now,
                    )
                )
                inputs = [
                    {"job_id": job_id, "name": name, "data": data}
                    for name, data in request.media.items()
                    if name != "image"  # the first frame has its column in jobs
                ]
                if inputs:
                    conn.execute(job_inputs.insert(), inputs)
                billing.reserve(conn, key.id, job_id, cost)
                job = _get(conn, job_id)
        except IntegrityError:
            if not idempotency_key:
                raise
            with self.db.read() as conn:  # a concurrent submit with the same key won the race
                found = _by_idempotency_key(conn, key.id, idempotency_key)
            if found is None:
                raise
            return found
        self.signals.queued()
        return job

    def get(self, job_id: str, key_id: int | None = None, *, include_deleted: bool = False) -> Job:
        """The job, if it exists and (when `key_id` is given) belongs to that key."""
        with self.db.read() as conn:
            job = _get(conn, job_id, include_deleted=include_deleted)
        if key_id is not None and job.key_id != key_id:
            raise JobNotFound(job_id)
        return job

    def by_prefix(self, prefix: str, *, retained: bool = False) -> Job | None:
        """The job whose id starts with `prefix` (hex; what a watermark carries), deleted or not;
        `retained`: only while it has succeeded and its result is still kept (not expired or deleted)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        query = _select_jobs().where(jobs.c.id.startswith(prefix))
        if retained:
            query = query.where(
                jobs.c.status == JobStatus.SUCCEEDED,
                jobs.c.deleted_at.is_(None),
                jobs.c.expires_at > time.time(),
            )
        with self.db.read() as conn:
            row = conn.execute(query.limit(1)).first()
        return _job(row) if row is not None else None

    def page(
        self, key_id: int, *, limit: int = 20, after: str | None = None, newest_first: bool = True
    ) -> tuple[list[Job], bool]:
        """One page of a key's jobs and whether more follow; `after` is the last id of the previous page."""
        query = _select_jobs().where(jobs.c.key_id == key_id, jobs.c.deleted_at.is_(None))
        order = (
            (jobs.c.created_at.desc(), jobs.c.id.desc()) if newest_first else (jobs.c.created_at, jobs.c.id)
        )
        with self.db.read() as conn:
            if after is not None:
                anchor = conn.execute(
                    select(jobs.c.created_at).where(jobs.c.id == after, jobs.c.key_id == key_id)
                ).scalar()
                if anchor is None:
                    raise JobNotFound(after)
                before = jobs.c.created_at < anchor if newest_first else jobs.c.created_at > anchor
                tie = and_(
                    jobs.c.created_at == anchor, jobs.c.id < after if newest_first else jobs.c.id > after
                )
                query = query.where(or_(before, tie))
            rows = conn.execute(query.order_by(*order).limit(limit + 1)).all()
        return [_job(r) for r in rows[:limit]], len(rows) > limit

    def media_of(self, job_id: str) -> dict[str, bytes]:
        """A job's media inputs by name, as `GenerationRequest.media` names them (a remix reuses them)."""
        with self.db.read() as conn:
            image = conn.execute(select(jobs.c.image).where(jobs.c.id == job_id)).scalar()
            return {**({"image": image} if image is not None else {}), **_inputs(conn, job_id)}

    def queue_position(self, job: Job) -> int | None:
        """How many queued jobs for the same model are ahead of this one (None unless queued)."""
        if job.status != JobStatus.QUEUED:
            return None
        with self.db.read() as conn:
            ahead: int = conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(
                    jobs.c.status == JobStatus.QUEUED,
                    jobs.c.model == job.model,
                    jobs.c.created_at < job.created_at,
                )
            ).scalar_one()
            return ahead

    def cancel(self, job_id: str, key_id: int | None = None) -> Job:
        """A queued job is canceled and refunded at once; a running one is flagged and its worker stops
        within one denoising step. Finished jobs are left as they are."""
        with self.db.write() as conn:
            job = _lock(conn, job_id)
            if job is None or (key_id is not None and job.key_id != key_id):
                raise JobNotFound(job_id)
            _cancel(conn, job.id, job.status, job.cancel_requested, CANCELED_BY_CLIENT)
            job = _get(conn, job_id)
        self.signals.queued()  # wakes workers, which check their cancel flag
        self.signals.changed()
        return job

    def _cancel_unwaited(self, conn: Connection, now: float) -> int:
        """Jobs whose synchronous caller is gone: nobody can receive them (the call returns no id
        before the video), so they are canceled and refunded rather than made and charged."""
        orphans = conn.execute(
            select(jobs.c.id, jobs.c.status)
            .where(
                jobs.c.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
                jobs.c.cancel_requested.is_(False),
                jobs.c.waiter_until < now,
            )
            .with_for_update()
        ).all()
        for row in orphans:
            _cancel(conn, row.id, JobStatus(row.status), False, NOBODY_WAITING)
        return len(orphans)

    def hold(self, job_id: str) -> None:
        """The synchronous call waiting for this job is still there (see `recover`)."""
        with self.db.write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.waiter_until.is_not(None))
                .values(waiter_until=time.time() + WAITER_GRACE_S)
            )

    def delete(self, job_id: str, key_id: int) -> Job:
        """Hide a job from every API for good. An unfinished one is canceled (and refunded) first; a
        worker still running it loses its lease and discards its output. The caller removes the files."""
        with self.db.write() as conn:
            job = _lock(conn, job_id)
            if job is None or job.key_id != key_id:
                raise JobNotFound(job_id)
            if not job.done:
                _finish(conn, job_id, JobStatus.CANCELED, error="deleted by the client")
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(deleted_at=time.time(), image=None))
            conn.execute(job_inputs.delete().where(job_inputs.c.job_id == job_id))
            job = _get(conn, job_id, include_deleted=True)
        self.signals.changed()
        return job

    def balance(self, key_id: int) -> int:
        with self.db.read() as conn:
            return billing.balance(conn, key_id)

    # ---- worker side --------------------------------------------------------------------------

    def claim(self, worker_id: str, models: Iterable[str], held: Collection[str] = ()) -> ClaimedJob | None:
        """The oldest queued job for one of `models`, leased to this worker; or, when the worker holds
        LoRA adapters (`held`: their sha256s), a job of the next few seconds that needs fewer loads."""
        now = time.time()
        with self.db.write() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.image, jobs.c.loras, jobs.c.created_at)
                .where(jobs.c.status == JobStatus.QUEUED, jobs.c.model.in_(list(models)))
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(PREFER_WINDOW if held else 1)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return None
            row = _preferred(rows, held)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.status == JobStatus.QUEUED)
                .values(
                    status=JobStatus.RUNNING,
                    worker_id=worker_id,
                    attempts=jobs.c.attempts + 1,
                    lease_expires_at=now + self.policy.lease_s,
                    started_at=now,
                    progress_step=0,
                    progress_total=0,
                    updated_at=now,
                )
            )
            job = _get(conn, row.id)
            inputs = _inputs(conn, row.id)
        self.signals.changed()
        media = {"image": row.image, **inputs}
        return ClaimedJob(job=job, request=job.request.with_media(media))

    def heartbeat(
        self, job_id: str, worker_id: str, step: int | None = None, total: int | None = None
    ) -> LeaseState:
        """Renew the lease (and record progress): whether the worker may go on, should stop because the
        client canceled, or has lost the job to another worker (stop, and write no results)."""
        now = time.time()
        values: dict[str, Any] = {"lease_expires_at": now + self.policy.lease_s}
        if step is not None:
            values.update(progress_step=step, progress_total=total, updated_at=now)
        with self.db.write() as conn:
            moved = conn.execute(
                update(jobs).where(jobs.c.id == job_id, *_owned(worker_id)).values(**values)
            ).rowcount
            if not moved:
                return LeaseState.LOST
            flagged = conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        if step is not None:
            self.signals.changed()
        return LeaseState.CANCEL_REQUESTED if flagged else LeaseState.OK

    def complete(self, job_id: str, worker_id: str, result: JobResult) -> Completion:
        """Mark success and charge; see `Completion` for the other ways it ends."""
        with self.db.write() as conn:
            job = _lock(conn, job_id, *_owned(worker_id))
            if job is None:
                # A retry of a completion that committed though its answer was lost (the database
                # went away at that moment) finds the job already done by this worker.
                done = conn.execute(
                    select(jobs.c.status).where(
                        jobs.c.id == job_id,
                        jobs.c.worker_id == worker_id,
                        jobs.c.status == JobStatus.SUCCEEDED,
                    )
                ).scalar()
                outcome = Completion.SUCCEEDED if done else Completion.LOST
            elif job.cancel_requested:
                _finish(conn, job_id, JobStatus.CANCELED, error=CANCELED_BY_CLIENT)
                outcome = Completion.CANCELED
            else:
                _finish(
                    conn,
                    job_id,
                    JobStatus.SUCCEEDED,
                    result=result.to_json(),
                    expires_at=time.time() + self.policy.retention_s,
                    step_s=result.seconds_per_step,
                )
                outcome = Completion.SUCCEEDED
        self.signals.changed()
        return outcome

    def fail(self, job_id: str, worker_id: str, error: str, *, retry: bool = True) -> JobStatus | None:
        """A failed run: back to the queue while attempts remain (and `retry`), else failed + refunded.
        Returns the job's new status, or None if the lease was lost."""
        with self.db.write() as conn:
            job = _lock(conn, job_id, *_owned(worker_id))
            if job is None:
                return None
            status = self._retry_or_end(conn, job, error, failed_error=error, retry=retry)
        self.signals.queued()
        self.signals.changed()
        return status

    def canceled(self, job_id: str, worker_id: str) -> bool:
        """The worker stopped because the client canceled: refund."""
        with self.db.write() as conn:
            if _lock(conn, job_id, *_owned(worker_id)) is None:
                return False
            _finish(conn, job_id, JobStatus.CANCELED, error=CANCELED_BY_CLIENT)
        self.signals.changed()
        return True

    def release(self, job_id: str, worker_id: str) -> bool:
        """Give a job back untouched (the worker is shutting down); the attempt does not count."""
        with self.db.write() as conn:
            job = _lock(conn, job_id, *_owned(worker_id))
            if job is None:
                return False
            if job.cancel_requested:
                _finish(conn, job_id, JobStatus.CANCELED, error=CANCELED_BY_CLIENT)
            else:
                _requeue(conn, job_id, job.error, attempts=job.attempts - 1)
        self.signals.queued()
        self.signals.changed()
        return True

    # ---- housekeeping -------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Re-queue running jobs whose lease ran out (their worker died); fail those out of attempts.
        Expire queued jobs nobody picked up in time and results past their retention.
        Returns the ids of jobs whose results expired (their files can go)."""
        now = time.time()
        with self.db.write() as conn:
            stale = conn.execute(
                _select_jobs()
                .where(jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < now)
                .with_for_update()  # PostgreSQL re-checks the condition once it has the lock
            ).all()
            for row in stale:
                job = _job(row)
                self._retry_or_end(
                    conn,
                    job,
                    "the worker stopped responding; retrying",
                    failed_error=f"the worker stopped responding {job.attempts} times; giving up",
                )
            too_old = (
                conn.execute(
                    select(jobs.c.id)
                    .where(
                        jobs.c.status == JobStatus.QUEUED,
                        jobs.c.created_at < now - self.policy.queue_timeout_s,
                    )
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            for job_id in too_old:
                _finish(conn, job_id, JobStatus.EXPIRED, error="no worker ran the job in time")
            unwaited = self._cancel_unwaited(conn, now)
            expired_results = list(
                conn.execute(
                    select(jobs.c.id).where(jobs.c.status == JobStatus.SUCCEEDED, jobs.c.expires_at < now)
                )
                .scalars()
                .all()
            )
            if expired_results:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(expired_results), jobs.c.status == JobStatus.SUCCEEDED)
                    .values(status=JobStatus.EXPIRED, updated_at=now)
                )
        if stale or too_old or expired_results or unwaited:
            self.signals.queued()
            self.signals.changed()
        return expired_results

    def _retry_or_end(
        self, conn: Connection, job: Job, error: str, *, failed_error: str, retry: bool = True
    ) -> JobStatus:
        """After a run ended badly: canceled if the client asked, else queued again while attempts
        remain, else failed. Every ending but the queue refunds."""
        if job.cancel_requested:
            _finish(conn, job.id, JobStatus.CANCELED, error=CANCELED_BY_CLIENT)
            return JobStatus.CANCELED
        if retry and job.attempts < self.policy.max_attempts:
            _requeue(conn, job.id, error, attempts=job.attempts)
            return JobStatus.QUEUED
        _finish(conn, job.id, JobStatus.FAILED, error=failed_error)
        return JobStatus.FAILED


def _cancel(conn: Connection, job_id: str, status: JobStatus, requested: bool, error: str) -> None:
    """A queued job ends canceled and refunded at once; a running one is flagged, and its worker
    stops within a denoising step and refunds it (Jobs.canceled). Finished jobs stay as they are."""
    if status == JobStatus.QUEUED:
        _finish(conn, job_id, JobStatus.CANCELED, error=error)
    elif status == JobStatus.RUNNING and not requested:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True, updated_at=time.time())
        )


def _finish(conn: Connection, job_id: str, status: JobStatus, **values: Any) -> None:
    """End a job: success keeps its reserved cost, every other ending refunds it; a webhook goes out
    if the job asked for one."""
    now = time.time()
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(status=status, finished_at=now, updated_at=now, lease_expires_at=None, **values)
    )
    settlement = Settlement.CHARGE if status == JobStatus.SUCCEEDED else Settlement.REFUND
    billing.settle(conn, job_id, settlement)
    webhooks.enqueue(conn, job_id, status)


def _owned(worker_id: str) -> tuple[Any, ...]:
    return jobs.c.status == JobStatus.RUNNING, jobs.c.worker_id == worker_id


def _lock(conn: Connection, job_id: str, *conditions: Any) -> Job | None:
    """Read a job for update, if it still meets `conditions`. PostgreSQL holds its row lock until the
    transaction ends (and re-checks the conditions after waiting for it); on SQLite the write
    transaction already excludes every other writer."""
    row = conn.execute(
        _select_jobs().where(jobs.c.id == job_id, jobs.c.deleted_at.is_(None), *conditions).with_for_update()
    ).first()
    return _job(row) if row else None


def _requeue(conn: Connection, job_id: str, error: str | None, *, attempts: int) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status=JobStatus.QUEUED,
            attempts=attempts,
            worker_id=None,
            lease_expires_at=None,
            cancel_requested=False,
            progress_step=0,
            progress_total=0,
            error=error,
            updated_at=time.time(),
        )
    )


def _preferred(rows: Sequence[Row[Any, Any, Any, Any]], held: Collection[str]) -> Row[Any, Any, Any, Any]:
    """Of queued jobs (oldest first), the one with the fewest adapters to load, among those made
    within PREFER_WAIT_S of the oldest; the oldest of them on a tie."""
    recent = [row for row in rows if row.created_at <= rows[0].created_at + PREFER_WAIT_S]
    return min(recent, key=lambda row: sum(sha not in held for sha in (row.loras or "").split()))


def _by_idempotency_key(conn: Connection, key_id: int, idempotency_key: str) -> Job | None:
    row = conn.execute(
        _select_jobs().where(jobs.c.key_id == key_id, jobs.c.idempotency_key == idempotency_key)
    ).first()
    return _job(row) if row else None


def _inputs(conn: Connection, job_id: str) -> dict[str, bytes]:
    """A job's media inputs besides its first frame, by name."""
    rows = conn.execute(select(job_inputs.c.name, job_inputs.c.data).where(job_inputs.c.job_id == job_id))
    return {name: data for name, data in rows}


def _get(conn: Connection, job_id: str, *, include_deleted: bool = False) -> Job:
    """The one job query: by id, hidden once deleted unless asked for."""
    query = _select_jobs().where(jobs.c.id == job_id)
    if not include_deleted:
        query = query.where(jobs.c.deleted_at.is_(None))
    row = conn.execute(query).first()
    if row is None:
        raise JobNotFound(job_id)
    return _job(row)


def _job(row: Row[Any]) -> Job:
    """A stored row as the core's Job; its JSON columns are validated on the way out."""
    values = row._mapping
    return Job(
        id=values["id"],
        key_id=values["key_id"],
        protocol=values["protocol"],
        model=values["model"],
        request=GenerationRequest.from_json(values["request"]),
        has_image=bool(values["has_image"]),
        origin=JobOrigin.from_json(values["origin"]),
        status=JobStatus(values["status"]),
        cost=values["cost"],
        billing=Billing(values["billing"]),
        attempts=values["attempts"],
        progress_step=values["progress_step"],
        progress_total=values["progress_total"],
        cancel_requested=bool(values["cancel_requested"]),
        error=values["error"],
        result=JobResult.from_json(values["result"]) if values["result"] else None,
        webhook_url=values["webhook_url"],
        created_at=values["created_at"],
        started_at=values["started_at"],
        finished_at=values["finished_at"],
        expires_at=values["expires_at"],
        updated_at=values["updated_at"],
    )

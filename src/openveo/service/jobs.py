"""The one job model and its state machine, shared by every protocol and every worker.

    queued → running → succeeded | failed | canceled      (+ expired when retention ends)

Each transition is one transaction that also settles the job's credits (see `billing`), so a job is
charged exactly once when it succeeds and refunded exactly once otherwise. Workers hold a lease on a
running job; `recover()` puts jobs whose worker vanished back in the queue (bounded attempts).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from openveo.service import billing, webhooks
from openveo.service.keys import ApiKey
from openveo.service.requests import GenerationRequest
from openveo.store.db import Database
from openveo.store.schema import jobs

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED, EXPIRED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
    "expired",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, EXPIRED})


@dataclass(frozen=True)
class Job:
    id: str
    key_id: int
    protocol: str
    model: str
    request: dict[str, Any]  # GenerationRequest fields, without the image
    has_image: bool
    extra: dict[str, Any]
    status: str
    cost: int
    billing: str
    attempts: int
    progress_step: int
    progress_total: int
    cancel_requested: bool
    error: str | None
    result: dict[str, Any] | None
    webhook_url: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    updated_at: float

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def progress(self) -> float:
        """0.0 – 1.0 from the denoising steps (1.0 once succeeded)."""
        if self.status == SUCCEEDED:
            return 1.0
        return self.progress_step / self.progress_total if self.progress_total else 0.0

    @property
    def videos(self) -> list[dict[str, Any]]:
        """One entry per video: blob keys `video`, `thumbnail` and its `seed`."""
        return list((self.result or {}).get("videos", []))

    @property
    def generation_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run a job: the full request, image included."""

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


def new_job_id() -> str:
    """Random lowercase hex: Google's SDK needs [a-z0-9] ids, and a watermark carries 48 bits of one."""
    return secrets.token_hex(16)


class JobNotFound(LookupError):
    pass


MAX_IDEMPOTENCY_KEY = 200


# Every column but the image (up to 20 MB), which only the claiming worker reads.
_JOB_COLUMNS = (*(c for c in jobs.c if c.name != "image"), jobs.c.image.is_not(None).label("has_image"))


def _select_jobs():
    return select(*_JOB_COLUMNS)


@dataclass
class Jobs:
    """Submitting, reading and cancelling jobs (API side) and claiming and finishing them (worker side)."""

    db: Database
    policy: QueuePolicy = field(default_factory=QueuePolicy)
    signals: JobSignals = field(default_factory=JobSignals)

    # ---- API side -----------------------------------------------------------------------------

    def submit(
        self,
        key: ApiKey,
        request: GenerationRequest,
        *,
        cost: int,
        protocol: str,
        extra: dict[str, Any] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Reserve the cost and queue the job in one transaction; raises `InsufficientCredits`."""
        now = time.time()
        job_id = new_job_id()
        fields = dataclasses.asdict(request)
        image = fields.pop("image")
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
                        request=json.dumps(fields),
                        image=image,
                        extra=json.dumps(extra or {}),
                        status=QUEUED,
                        cost=cost,
                        billing="reserved",
                        attempts=0,
                        progress_step=0,
                        progress_total=0,
                        cancel_requested=False,
                        webhook_url=webhook_url,
                        idempotency_key=idempotency_key,
                        created_at=now,
                        updated_at=now,
                    )
                )
                billing.reserve(conn, key.id, job_id, cost)
                job = _get(conn, job_id)
        except IntegrityError:
            if not idempotency_key:
                raise
            with self.db.read() as conn:  # a concurrent submit with the same key won the race
                job = _by_idempotency_key(conn, key.id, idempotency_key)
            if job is None:
                raise
            return job
        self.signals.queued()
        return job

    def get(self, job_id: str, key_id: int | None = None, *, include_deleted: bool = False) -> Job:
        """The job, if it exists and (when `key_id` is given) belongs to that key."""
        query = _select_jobs().where(jobs.c.id == job_id)
        if not include_deleted:
            query = query.where(jobs.c.deleted_at.is_(None))
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None or (key_id is not None and row.key_id != key_id):
            raise JobNotFound(job_id)
        return _job(row)

    def by_prefix(self, prefix: str, *, retained: bool = False) -> Job | None:
        """The job whose id starts with `prefix` (hex; what a watermark carries), deleted or not;
        `retained`: only while it has succeeded and its result is still kept (not expired or deleted)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        query = _select_jobs().where(jobs.c.id.startswith(prefix))
        if retained:
            query = query.where(
                jobs.c.status == SUCCEEDED, jobs.c.deleted_at.is_(None), jobs.c.expires_at > time.time()
            )
        with self.db.read() as conn:
            row = conn.execute(query.limit(1)).first()
        return _job(row) if row is not None else None

    def list(
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

    def image_of(self, job_id: str) -> bytes | None:
        """The input image of a job (remixes reuse it)."""
        with self.db.read() as conn:
            return conn.execute(select(jobs.c.image).where(jobs.c.id == job_id)).scalar()

    def queue_position(self, job: Job) -> int | None:
        """How many queued jobs for the same model are ahead of this one (None unless queued)."""
        if job.status != QUEUED:
            return None
        with self.db.read() as conn:
            return conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.status == QUEUED, jobs.c.model == job.model, jobs.c.created_at < job.created_at)
            ).scalar_one()

    def cancel(self, job_id: str, key_id: int | None = None) -> Job:
        """A queued job is canceled and refunded at once; a running one is flagged and its worker stops
        within one denoising step. Finished jobs are left as they are."""
        with self.db.write() as conn:
            job = _lock(conn, job_id)
            if job is None or (key_id is not None and job.key_id != key_id):
                raise JobNotFound(job_id)
            if job.status == QUEUED:
                self._finish(conn, job_id, CANCELED, "refund", error="canceled by the client")
            elif job.status == RUNNING and not job.cancel_requested:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(cancel_requested=True, updated_at=time.time())
                )
            job = _get(conn, job_id)
        self.signals.queued()  # wakes workers, which check their cancel flag
        self.signals.changed()
        return job

    def delete(self, job_id: str, key_id: int) -> Job:
        """Hide a job from every API for good. An unfinished one is canceled (and refunded) first; a
        worker still running it loses its lease and discards its output. The caller removes the files."""
        with self.db.write() as conn:
            job = _lock(conn, job_id)
            if job is None or job.key_id != key_id:
                raise JobNotFound(job_id)
            if not job.done:
                self._finish(conn, job_id, CANCELED, "refund", error="deleted by the client")
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(deleted_at=time.time()))
            job = _get(conn, job_id, include_deleted=True)
        self.signals.changed()
        return job

    def balance(self, key_id: int) -> int:
        with self.db.read() as conn:
            return billing.balance(conn, key_id)

    # ---- worker side --------------------------------------------------------------------------

    def claim(self, worker_id: str, models: Iterable[str]) -> ClaimedJob | None:
        """The oldest queued job for one of `models`, leased to this worker."""
        now = time.time()
        with self.db.write() as conn:
            row = conn.execute(
                select(jobs.c.id, jobs.c.image)
                .where(jobs.c.status == QUEUED, jobs.c.model.in_(list(models)))
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.status == QUEUED)
                .values(
                    status=RUNNING,
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
        self.signals.changed()
        fields = dict(job.request)
        if fields.get("output_size"):
            fields["output_size"] = tuple(fields["output_size"])  # JSON has no tuples
        request = GenerationRequest(**fields, image=row.image)
        return ClaimedJob(job=job, request=request)

    def heartbeat(
        self, job_id: str, worker_id: str, step: int | None = None, total: int | None = None
    ) -> str:
        """Renew the lease (and record progress). Returns 'ok', 'cancel' (client asked to stop) or
        'lost' (the lease was taken away: stop and do not write results)."""
        now = time.time()
        values: dict[str, Any] = {"lease_expires_at": now + self.policy.lease_s}
        if step is not None:
            values.update(progress_step=step, progress_total=total, updated_at=now)
        with self.db.write() as conn:
            moved = conn.execute(
                update(jobs).where(jobs.c.id == job_id, *_owned(worker_id)).values(**values)
            ).rowcount
            if not moved:
                return "lost"
            flagged = conn.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        if step is not None:
            self.signals.changed()
        return "cancel" if flagged else "ok"

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any]) -> str:
        """Mark success and charge. Returns 'succeeded'; 'canceled' if the client canceled after the
        last step (refunded: the result is not delivered); 'lost' if another worker owns the job now."""
        with self.db.write() as conn:
            job = _lock(conn, job_id, *_owned(worker_id))
            if job is None:
                # A retry of a completion that committed though its answer was lost (the database
                # went away at that moment) finds the job already done by this worker.
                done = conn.execute(
                    select(jobs.c.status).where(
                        jobs.c.id == job_id, jobs.c.worker_id == worker_id, jobs.c.status == SUCCEEDED
                    )
                ).scalar()
                outcome = SUCCEEDED if done else "lost"
            elif job.cancel_requested:
                self._finish(conn, job_id, CANCELED, "refund", error="canceled by the client")
                outcome = CANCELED
            else:
                self._finish(
                    conn,
                    job_id,
                    SUCCEEDED,
                    "charge",
                    result=json.dumps(result),
                    expires_at=time.time() + self.policy.retention_s,
                    step_s=result.get("seconds_per_step"),
                )
                outcome = SUCCEEDED
        self.signals.changed()
        return outcome

    def fail(self, job_id: str, worker_id: str, error: str, *, retry: bool = True) -> str | None:
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
            self._finish(conn, job_id, CANCELED, "refund", error="canceled by the client")
        self.signals.changed()
        return True

    def release(self, job_id: str, worker_id: str) -> bool:
        """Give a job back untouched (the worker is shutting down); the attempt does not count."""
        with self.db.write() as conn:
            job = _lock(conn, job_id, *_owned(worker_id))
            if job is None:
                return False
            if job.cancel_requested:
                self._finish(conn, job_id, CANCELED, "refund", error="canceled by the client")
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
        expired_results: list[str] = []
        with self.db.write() as conn:
            stale = conn.execute(
                _select_jobs()
                .where(jobs.c.status == RUNNING, jobs.c.lease_expires_at < now)
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
                    .where(jobs.c.status == QUEUED, jobs.c.created_at < now - self.policy.queue_timeout_s)
                    .with_for_update()
                )
                .scalars()
                .all()
            )
            for job_id in too_old:
                self._finish(conn, job_id, EXPIRED, "refund", error="no worker ran the job in time")
            expired_results = (
                conn.execute(select(jobs.c.id).where(jobs.c.status == SUCCEEDED, jobs.c.expires_at < now))
                .scalars()
                .all()
            )
            if expired_results:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(expired_results), jobs.c.status == SUCCEEDED)
                    .values(status=EXPIRED, updated_at=now)
                )
        if stale or too_old or expired_results:
            self.signals.queued()
            self.signals.changed()
        return list(expired_results)

    def _retry_or_end(
        self, conn: Connection, job: Job, error: str, *, failed_error: str, retry: bool = True
    ) -> str:
        """After a run ended badly: canceled if the client asked, else queued again while attempts
        remain, else failed. Every ending but the queue refunds."""
        if job.cancel_requested:
            self._finish(conn, job.id, CANCELED, "refund", error="canceled by the client")
            return CANCELED
        if retry and job.attempts < self.policy.max_attempts:
            _requeue(conn, job.id, error, attempts=job.attempts)
            return QUEUED
        self._finish(conn, job.id, FAILED, "refund", error=failed_error)
        return FAILED

    @staticmethod
    def _finish(conn: Connection, job_id: str, status: str, outcome: str, **values: Any) -> None:
        now = time.time()
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(status=status, finished_at=now, updated_at=now, lease_expires_at=None, **values)
        )
        billing.settle(conn, job_id, outcome)
        webhooks.enqueue(conn, job_id, status)


def _owned(worker_id: str) -> tuple:
    return jobs.c.status == RUNNING, jobs.c.worker_id == worker_id


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
            status=QUEUED,
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


def _by_idempotency_key(conn: Connection, key_id: int, idempotency_key: str) -> Job | None:
    row = conn.execute(
        _select_jobs().where(jobs.c.key_id == key_id, jobs.c.idempotency_key == idempotency_key)
    ).first()
    return _job(row) if row else None


def _get(conn: Connection, job_id: str, *, include_deleted: bool = False) -> Job:
    query = _select_jobs().where(jobs.c.id == job_id)
    if not include_deleted:
        query = query.where(jobs.c.deleted_at.is_(None))
    row = conn.execute(query).first()
    if row is None:
        raise JobNotFound(job_id)
    return _job(row)


def _job(row) -> Job:
    values = {f.name: row._mapping[f.name] for f in dataclasses.fields(Job)}
    values.update(
        request=json.loads(values["request"]),
        extra=json.loads(values["extra"] or "{}"),
        result=json.loads(values["result"]) if values["result"] else None,
        has_image=bool(values["has_image"]),
        cancel_requested=bool(values["cancel_requested"]),
    )
    return Job(**values)

"""The worker loop: claim a job with a lease, run the engine on it while a heartbeat keeps the lease
alive and carries the cancel flag back, store the MP4s and thumbnails, and settle the job.

Signals: SIGTERM drains (the current job finishes, nothing new is claimed); SIGINT stops at once
and gives the running job back to the queue untouched.
"""

from __future__ import annotations

import contextvars
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from openveo import logs
from openveo.config import Settings
from openveo.core.job import Completion, LeaseState, attempt_folder, job_folder
from openveo.engine.engine import BadInput, Canceled, Engine, Generation
from openveo.engine.parallel import Group, GroupBroken
from openveo.service.jobs import ClaimedJob, Jobs
from openveo.service.loras import local_file
from openveo.service.workers import PRESENCE_S, WorkerRegistry, WorkerState
from openveo.store.blobs import BlobMissing, Blobs
from openveo.store.db import OUTAGE, first_line, log_failure
from openveo.store.wakeups import Bell
from openveo.worker.delivery import Delivery, job_result, staged_paths, store

log = logging.getLogger("openveo.worker")

IDLE_POLL_S = 1.0  # fallback when no doorbell rings
OUTAGE_RETRY_S = (0.5, 1, 2, 5)
T = TypeVar("T")


@dataclass
class _Run:
    """Flags one running job shares between the engine's step callback and the heartbeat thread."""

    job_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def note(self, state: LeaseState) -> None:
        if state == LeaseState.CANCEL_REQUESTED:
            self.cancel.set()
        elif state == LeaseState.LOST:
            self.lost.set()


@dataclass
class _Attempt:
    """One run of a job: where its files go, and the heartbeat that holds its lease until settled."""

    job_id: str
    folder: str  # blob prefix
    staging: Path  # local folder the files are written in, whole, before they are stored
    run: _Run
    heartbeat: threading.Thread

    def close(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.run.done.set()
        self.heartbeat.join()


class Worker:
    def __init__(
        self,
        settings: Settings,
        jobs: Jobs,
        blobs: Blobs,
        engine: Engine,
        models: list[str],
        doorbell: Bell | None = None,
        registry: WorkerRegistry | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.blobs = blobs
        self.engine = engine
        self.models = models
        self.doorbell = doorbell
        self.registry = registry
        self.delivery = delivery or Delivery(settings.video_crf, stamp=None)  # MP4s, marks, thumbnails
        self.id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.draining = threading.Event()
        self.interrupted = threading.Event()
        self.state: WorkerState = WorkerState.LOADING
        self.current_job: str | None = None
        self._gone = threading.Event()
        self._finisher: threading.Thread | None = None  # the previous job's encode and store
        self.broken = False  # its GPU group lost a peer: exit, so the supervisor restarts the group

    def announce(self) -> None:
        """Register in the worker registry and keep beating there until `retire()`."""
        if self.registry is None:
            return
        device = str(self.engine.device)
        self.registry.register(self.id, socket.gethostname(), os.getpid(), self.models, device)
        threading.Thread(target=self._presence, name="presence", daemon=True).start()

    def retire(self) -> None:
        self._gone.set()
        if self.registry is not None:
            try:
                self.registry.beat(self.id, WorkerState.STOPPED)
            except OUTAGE:  # it will show as gone once its heartbeat is old
                log.warning("could not mark worker %s stopped: the database is unavailable", self.id)

    def _presence(self) -> None:
        assert self.registry is not None
        while not self._gone.wait(PRESENCE_S):
            idle = self.state == WorkerState.IDLE
            state = WorkerState.DRAINING if self.draining.is_set() and idle else self.state
            try:
                self.registry.beat(self.id, state, self.current_job)
            except Exception:
                log_failure(log, "worker registry beat failed; will retry")

    def load(self) -> None:
        """Load each model, and compile it for every shape it serves, before the first claim."""
        for model in self.models:
            started = time.perf_counter()
            self.engine.load(model)
            log.info("worker %s loaded %s in %.1fs", self.id, model, time.perf_counter() - started)
            started = time.perf_counter()
            if self.engine.warm_up(model):
                log.info("worker %s warmed up %s in %.1fs", self.id, model, time.perf_counter() - started)

    def serve_forever(self) -> None:
        log.info("worker %s serving %s", self.id, ", ".join(self.models))
        self.state = WorkerState.IDLE
        while not (self.draining.is_set() or self.interrupted.is_set()):
            self._housekeeping()
            try:
                claimed = self.jobs.claim(self.id, self.models, self.engine.held_loras())
            except OUTAGE as exc:
                log.warning("database unavailable (%s); trying again shortly", first_line(exc))
                time.sleep(OUTAGE_RETRY_S[-1] / 2)
                continue
            if claimed is None:
                if self.doorbell:
                    self.doorbell.wait(IDLE_POLL_S)
                else:
                    self.draining.wait(IDLE_POLL_S)
                continue
            self.state, self.current_job = WorkerState.BUSY, claimed.job.id
            try:
                self.run(claimed)
            finally:
                self.state, self.current_job = WorkerState.IDLE, None
        self.wait_for_finisher()
        log.info("worker %s stopped", self.id)

    def install_signal_handlers(self) -> None:
        def drain(*_):
            log.info("worker %s draining: finishing the current job, then exiting", self.id)
            self.draining.set()

        def interrupt(*_):
            log.info("worker %s interrupted: giving the current job back", self.id)
            self.interrupted.set()

        signal.signal(signal.SIGTERM, drain)
        signal.signal(signal.SIGINT, interrupt)

    def run(self, claimed: ClaimedJob) -> None:
        token = logs.job_id.set(claimed.job.id)
        try:
            self._run(claimed)
        finally:
            logs.job_id.reset(token)

    def _run(self, claimed: ClaimedJob) -> None:
        job, request = claimed.job, claimed.request
        run = _Run(job.id)
        log.info("job %s: running %s (attempt %d)", job.id, job.model, job.attempts)
        heartbeat = threading.Thread(target=self._heartbeat, args=(run,), daemon=True)
        heartbeat.start()
        attempt = _Attempt(
            job.id,
            attempt_folder(job.id, job.attempts),
            self.settings.staging_dir / f"{job.id}-{job.attempts}",
            run,
            heartbeat,
        )
        try:
            generation = self.engine.generate(
                request,
                on_progress=lambda done, total: run.note(self._progress(job.id, done, total)),
                should_cancel=lambda: run.cancel.is_set() or run.lost.is_set() or self.interrupted.is_set(),
                watermark=self.delivery.watermark(job.id),
            )
        except Canceled:
            self._discard(attempt.folder)
            if self.interrupted.is_set() and not run.cancel.is_set():
                self._persist(self.jobs.release, job.id, self.id)
                log.info("job %s: given back to the queue", job.id)
            elif run.cancel.is_set():
                self._persist(self.jobs.canceled, job.id, self.id)
                log.info("job %s: canceled by the client", job.id)
            else:
                log.warning("job %s: lease lost; stopped", job.id)
            attempt.close()
            return
        except GroupBroken as exc:  # not the job's fault: give it back, and end this broken group
            log.error("job %s: %s; giving the job back and stopping this worker group", job.id, exc)
            self._persist(self.jobs.release, job.id, self.id)
            attempt.close()
            self.broken = True
            self.interrupted.set()
            return
        except Exception as exc:  # a failed run must never take the worker down
            self._failed(attempt, exc)
            attempt.close()
            return
        # Encoding and storing need no GPU: they run beside the next job's denoising. One at a time,
        # so a slow store holds the queue back rather than piling up finished videos in memory.
        self.wait_for_finisher()
        context = contextvars.copy_context()  # the job id stays on the finisher's log lines
        self._finisher = threading.Thread(
            target=context.run, args=(self._finish, attempt, generation), name=f"finish-{job.id}"
        )
        self._finisher.start()

    def wait_for_finisher(self) -> None:
        if self._finisher is not None:
            self._finisher.join()
            self._finisher = None

    def _finish(self, attempt: _Attempt, generation: Generation) -> None:
        """Deliver the videos, store them and settle the job (see worker/delivery.py)."""
        job_id, folder = attempt.job_id, attempt.folder
        try:
            paths = staged_paths(attempt.staging, len(generation.videos))
            encode_s = self.delivery.write(generation, job_id, paths)
            videos = [
                store(self.blobs, folder, where, seed)
                for where, seed in zip(paths, generation.seeds, strict=True)
            ]
            result = job_result(generation, videos, encode_s, self.delivery.provenance(job_id))
            outcome = self._persist(self.jobs.complete, job_id, self.id, result)
            if outcome == Completion.SUCCEEDED:
                log.info("job %s: succeeded (%s)", job_id, _format_timings(result.timings))
            elif outcome is None:  # stopped while the database was away: it may have committed, keep them
                log.warning(
                    "job %s: stopped before its completion could be confirmed; its lease decides", job_id
                )
            else:  # canceled after its last step, or the lease was lost: the files are not delivered
                log.warning("job %s: %s before completion; discarding this attempt", job_id, outcome)
                self._discard(folder)
        except Exception as exc:
            self._failed(attempt, exc)
        finally:
            attempt.close()

    def _failed(self, attempt: _Attempt, exc: Exception) -> None:
        """A failed run. The request's own bad input fails the job at once, with a message the client
        can act on; anything else is the server's trouble: retried while attempts remain, and told to
        the client without its details (they can name server paths; the log has them)."""
        self._discard(attempt.folder)
        log.exception("job %s: failed", attempt.job_id, exc_info=exc)
        if isinstance(exc, BadInput):
            error, retry = f"generation failed: {exc}", False
        else:
            error, retry = f"generation failed on the server ({type(exc).__name__}; see its log)", True
        status = self._persist(self.jobs.fail, attempt.job_id, self.id, error, retry=retry)
        log.info("job %s: now %s", attempt.job_id, status)

    def _persist(self, action: Callable[..., T], *args: Any, **options: Any) -> T | None:
        """Run a queue operation, waiting out a database outage (a PostgreSQL restart, say) instead of
        dying with the job's work in hand. Gives up only when interrupted (None): the job's lease then
        runs out and it is run again."""
        failures = 0
        while True:
            try:
                return action(*args, **options)
            except OUTAGE as exc:
                if self.interrupted.is_set():
                    return None
                delay = OUTAGE_RETRY_S[min(failures, len(OUTAGE_RETRY_S) - 1)]
                failures += 1
                log.warning("database unavailable (%s); retrying in %.1fs", first_line(exc), delay)
                self.interrupted.wait(delay)

    def _progress(self, job_id: str, step: int, total: int) -> LeaseState:
        """Progress is best effort: a database outage must not fail the generation."""
        try:
            return self.jobs.heartbeat(job_id, self.id, step, total)
        except OUTAGE:
            return LeaseState.OK

    def _heartbeat(self, run: _Run) -> None:
        interval = max(self.jobs.policy.lease_s / 3, 0.05)
        while not run.done.wait(interval):
            try:
                run.note(self.jobs.heartbeat(run.job_id, self.id))
            except Exception:
                log_failure(log, "job %s: heartbeat failed; will retry", run.job_id)

    def _housekeeping(self) -> None:
        try:
            for job_id in self.jobs.recover():
                self.blobs.delete_prefix(job_folder(job_id))
        except Exception:
            log_failure(log, "housekeeping failed; will retry")

    def _discard(self, folder: str) -> None:
        try:
            self.blobs.delete_prefix(folder)
        except Exception:  # an orphaned attempt folder goes when the job's retention ends
            log_failure(log, "could not remove %s", folder)


def _format_timings(timings: Mapping[str, float]) -> str:
    return ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in timings.items())


def run_worker(settings: Settings, *, migrate: bool = True) -> None:
    """`openveo worker`: load the model once, then serve the queue until told to stop."""
    from openveo.engine.parallel import group_from_environment
    from openveo.engine.pipelines import quiet_libraries, resolve_device
    from openveo.service.provenance import open_stamp
    from openveo.service.runtime import open_runtime

    # Until a job can be running there is nothing to give back or finish: a signal ends the process at
    # once. (A KeyboardInterrupt could be swallowed by a library import that catches everything.)
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _exit_at_once)
    supervisor = os.environ.get("OPENVEO_SUPERVISOR_PID")
    group = group_from_environment(
        settings.gpus_per_video, settings.context_parallel, resolve_device(settings.device)
    )
    follower = group is not None and not group.leader
    if supervisor:
        # A follower has no job of its own to give back: it goes at once with its supervisor.
        _exit_with_parent(int(supervisor), signal.SIGKILL if follower else signal.SIGINT)
    quiet_libraries()
    if group is not None and not group.leader:
        _follow(settings, group)
        return
    runtime = open_runtime(settings, migrate=migrate)
    model = runtime.catalog.resolve(settings.model).name
    engine = Engine(settings, runtime.catalog, group, lora_files(settings, runtime.blobs))
    doorbell = runtime.wakeups.listen("worker")
    registry = WorkerRegistry(runtime.db)
    delivery = Delivery(settings.video_crf, open_stamp(settings, runtime.db, runtime.secret))
    worker = Worker(settings, runtime.jobs, runtime.blobs, engine, [model], doorbell, registry, delivery)
    worker.announce()
    try:
        worker.load()
        worker.install_signal_handlers()
        worker.serve_forever()
    finally:
        worker.retire()
        engine.release_followers()
        doorbell.close()
        runtime.close()
    if worker.broken:
        raise SystemExit(1)


def _follow(settings: Settings, group: Group) -> None:
    """Ranks 1.. of a group: load the same model and run whatever the leader runs. Signals are the
    leader's business (it cancels the group's work and then releases it)."""
    from openveo.service.runtime import result_store

    engine = Engine(settings, settings.catalog(), group, lora_files(settings, result_store(settings)))
    engine.load(settings.model)
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    log.info("rank %d of %s following the leader", group.rank, group.plan)
    engine.follow()
    group.close()


def lora_files(settings: Settings, blobs: Blobs) -> Callable[[str], Path]:
    """Where the engine finds a job's LoRA files: in the result store (remote ones copied to a local
    cache once). One that was removed since the job was queued fails the job, not the worker."""
    cache = settings.data_dir / "lora-cache"

    def locate(sha256: str) -> Path:
        try:
            return local_file(blobs, sha256, cache)
        except BlobMissing:
            raise BadInput(
                f"a LoRA of this request (sha256 {sha256[:12]}) was removed from this server"
            ) from None

    return locate


def _exit_at_once(signum: int, _frame) -> None:
    os._exit(128 + signum)


def _exit_with_parent(parent: int, sig: int = signal.SIGINT) -> None:
    """A worker started by `serve` gets SIGINT (give the job back, exit) when `serve` dies, however it
    dies: it must never keep a GPU busy for a server that is gone. Linux only; elsewhere a no-op."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the line above (we were re-parented)
        os.kill(os.getpid(), sig)

"""`openveo serve`: the API server in this process plus worker processes it supervises.

The API process never imports torch; workers are separate processes (`openveo worker`), one per
visible GPU, or one CPU worker when there is none. A worker that dies is started again."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from openveo import logs
from openveo.config import Settings

log = logging.getLogger("openveo.serve")

RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
HEALTHY_RUN_S = 60.0
STOP_GRACE_S = 10.0
SUPERVISOR_ENV = "OPENVEO_SUPERVISOR_PID"  # set for workers `serve` starts: they exit when it dies


def visible_gpus() -> list[str]:
    """GPU indices this machine offers, found without importing torch (CUDA_VISIBLE_DEVICES wins)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listing.splitlines() if line.strip()]


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as OPENVEO_* variables, so child processes build the same Settings."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if isinstance(value, dict | list):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"OPENVEO_{name.upper()}"] = text
    return env


class WorkerSupervisor:
    """Starts N workers, restarts any that exit unexpectedly, stops them all on shutdown.

    With `gpus_per_video` > 1 each worker is a group of processes, one per GPU, that make each video
    together (engine/parallel.py): rank 0 runs the queue, the others follow it. A group is restarted
    whole when any of its processes exits, because the rest cannot go on without it."""

    def __init__(self, settings: Settings, count: int, gpus: list[str]) -> None:
        self.settings = settings
        size = settings.gpus_per_video
        # More workers than GPUs share them round-robin; with no GPU every worker runs on the CPU.
        groups = [gpus[i : i + size] for i in range(0, len(gpus) - size + 1, size)] if gpus else []
        self.slots: list[list[str] | None] = [
            groups[i % len(groups)] if groups else None for i in range(count)
        ]
        self.procs: list[list[subprocess.Popen]] = [[] for _ in range(count)]
        self.started_at = [0.0] * count
        self.failures = [0] * count
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        for slot in range(len(self.slots)):
            self._spawn(slot)
        self._thread.start()

    def _spawn(self, slot: int) -> None:
        size = self.settings.gpus_per_video
        env = {**os.environ, **settings_env(self.settings), SUPERVISOR_ENV: str(os.getpid())}
        gpus = self.slots[slot]
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        elif "OMP_NUM_THREADS" not in os.environ:  # CPU workers share the cores instead of fighting for them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // (len(self.slots) * size)))
        # -P: the working directory is not on the path, so a file there cannot shadow a module.
        args = [sys.executable, "-P", "-m", "openveo.cli", "worker", "--no-migrate"]
        with self._lock:
            if self._stopping.is_set():
                return
            port = str(_free_port())
            self.procs[slot] = []
            for rank in range(size):
                group_env = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size),
                             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port} if size > 1 else {}  # fmt: skip
                self.procs[slot].append(
                    subprocess.Popen(args, env={**env, **group_env}, start_new_session=True)
                )
            self.started_at[slot] = time.monotonic()
        where = f"GPU {','.join(gpus)}" if gpus is not None else "CPU"
        pids = ", ".join(str(p.pid) for p in self.procs[slot])
        log.info("started worker %d (pid %s) on %s", slot, pids, where)

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for slot, procs in enumerate(self.procs):
                exited = [p for p in procs if p.poll() is not None]
                if not exited or self._stopping.is_set():
                    continue
                # The rest of a group cannot work without the one that left: its leader gives the
                # running job back (SIGINT), then the group goes.
                _stop_all([p for p in procs if p.poll() is None])
                if time.monotonic() - self.started_at[slot] > HEALTHY_RUN_S:
                    self.failures[slot] = 0  # it ran fine for a while: this is a fresh failure
                delay = RESTART_BACKOFF_S[min(self.failures[slot], len(RESTART_BACKOFF_S) - 1)]
                self.failures[slot] += 1
                code = exited[0].returncode
                log.warning("worker %d exited with %s; restarting in %ds", slot, code, delay)
                if self._stopping.wait(delay):
                    return
                self._spawn(slot)

    def _live(self) -> list[subprocess.Popen]:
        return [p for procs in self.procs for p in procs if p.poll() is None]

    def drain(self) -> None:
        """SIGTERM: each worker finishes its running job, claims nothing new and exits. No time limit:
        a job may take minutes, and cutting it short would waste them."""
        with self._lock:
            self._stopping.set()
            live = self._live()
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        for proc in live:
            proc.wait()

    def stop(self) -> None:
        """SIGINT: each worker gives its running job back to the queue and exits; then SIGKILL."""
        with self._lock:  # no worker is being started while we look
            self._stopping.set()
            live = self._live()
        _stop_all(live)


def _stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGINT (a worker gives its job back and exits), then SIGKILL whatever is left after the grace."""
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prepare(settings: Settings, *, migrate: bool) -> None:
    """Before any worker starts: the schema up to date, a result store that works (else
    `StorageUnavailable` stops the start, with the reason), and the LoRAs of OPENVEO_LORA_DIRS
    registered."""
    from openveo.service.runtime import result_store
    from openveo.store.db import Database

    if migrate:
        db = Database(settings.db_url)
        db.upgrade()
        db.dispose()
    blobs = result_store(settings)
    if settings.lora_folders:
        from openveo.service.loras import LoraRegistry

        db = Database(settings.db_url)
        try:
            registry = LoraRegistry(db, blobs, settings.catalog(), settings.staging_dir)
            added = registry.scan(settings.lora_folders)
        finally:
            db.dispose()
        log.info("LoRA folders: %d adapters registered (%s)", len(added), ", ".join(added) or "none new")


def first_key_banner(settings: Settings) -> str | None:
    """On a first run with no keys, make one and return the message that shows it (once)."""
    from openveo.service.keys import count_keys, create_key
    from openveo.store.db import Database

    db = Database(settings.db_url)
    try:
        if count_keys(db):
            return None
        _, secret = create_key(db, "default", settings.initial_credits)
    finally:
        db.dispose()
    return (
        f"No API keys existed, so one was made with {settings.initial_credits:g} credits. It is shown "
        f"only now:\n\n    {secret}\n\nMake more with `openveo keys create --name NAME --credits N`."
    )


def run(settings: Settings, workers: int | None) -> None:
    import uvicorn

    from openveo.api.app import create_app

    prepare(settings, migrate=True)
    banner = first_key_banner(settings)
    if banner:
        print(banner, file=sys.stderr, flush=True)

    gpus = visible_gpus()
    count = workers if workers is not None else max(1, len(gpus) // settings.gpus_per_video)
    supervisor = WorkerSupervisor(settings, count, gpus)
    supervisor.start()
    if count == 0:
        log.info("no workers: this server only accepts and serves jobs (run `openveo worker` elsewhere)")
    # uvicorn shuts down on SIGTERM and then re-raises it; as an exception it lets `finally` stop the
    # workers (the default action would kill this process first and leave them running).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="info",
            log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
            proxy_headers=True,
            timeout_graceful_shutdown=5,
        )
        logs.install_filters()  # uvicorn has set up its own loggers by now
        uvicorn.Server(config).run()
    finally:
        supervisor.stop()


def _free_port() -> int:
    """A port for a worker group's rendezvous (torch.distributed's TCP store on rank 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _exit_on_sigterm(*_args) -> None:
    raise SystemExit(0)


def run_workers(settings: Settings, gpus: list[str], *, migrate: bool = True) -> None:
    """`openveo worker --gpus 0,1`: one worker per listed GPU (or per `gpus_per_video` GPUs) under one
    supervisor. SIGTERM drains them all (each finishes its job); Ctrl-C (SIGINT) gives the running jobs
    back to the queue at once. No GPUs listed: one CPU worker (a gloo group when gpus_per_video > 1)."""
    prepare(settings, migrate=migrate)
    asked: list[str] = []
    told = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        asked.append("drain" if signum == signal.SIGTERM else "stop")
        told.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    count = len(gpus) // settings.gpus_per_video if gpus else 1
    supervisor = WorkerSupervisor(settings, count, gpus)
    supervisor.start()
    told.wait()
    if asked[0] == "drain":
        log.info("draining %d workers: each finishes its current job", count)
        supervisor.drain()
    else:
        supervisor.stop()

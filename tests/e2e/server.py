"""The real `openveo serve` in a subprocess, as a user starts it, plus ways to look inside it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from openveo.store.db import Database
from tests.helpers import run_cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_command(model: str, data_dir: Path, *options: str) -> list[str]:
    """`openveo worker` as an operator types it on a worker host."""
    return [
        sys.executable,
        "-m",
        "openveo.cli",
        "worker",
        "--model",
        model,
        "--data-dir",
        str(data_dir),
        *options,
    ]


class Deployment:
    """What a test reads of a running deployment, whichever way it runs: its data dir, its database
    and the real `openveo` command pointed at both."""

    data_dir: Path
    models_root: Path
    database_url: str
    url: str

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {"OPENVEO_MODELS_DIR": str(self.models_root), "OPENVEO_DATABASE_URL": self.database_url}
        return run_cli(*args, "--data-dir", str(self.data_dir), env=env)

    def database(self) -> Database:
        return Database(self.database_url)

    def job_row(self, job_id: str):
        """The job's row as stored, every column."""
        from openveo.store.schema import jobs

        db = self.database()
        try:
            with db.read() as conn:
                return conn.execute(jobs.select().where(jobs.c.id == job_id)).one()
        finally:
            db.dispose()

    def wait_status(self, key: str, job_id: str, wanted: set[str], timeout: float = 90) -> str:
        """Poll a v2 request until its Segmind status is one of `wanted`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = httpx.get(f"{self.url}/v2/requests/{job_id}/status", headers={"x-api-key": key}).json()
            if status["status"] in wanted:
                return status["status"]
            time.sleep(0.05)
        raise AssertionError(f"{job_id} never reached {wanted}:\n{self.log()}")

    def log(self) -> str:
        return ""


class Server(Deployment):
    """The real `openveo serve` in a subprocess, as a user starts it."""

    def __init__(
        self,
        data_dir: Path,
        models_root: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.models_root = models_root
        self.workers = workers
        self.database_url = database_url or f"sqlite:///{data_dir / 'openveo.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "OPENVEO_MODELS_DIR": str(models_root),
            "OPENVEO_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "OPENVEO_DATABASE_URL": self.database_url,
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "serve.log"

    def start(self, timeout: float = 60) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openveo.cli",
                "serve",
                "--model",
                "tiny",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"openveo serve exited early:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/v1/get-user-credits", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"openveo serve did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        """Stop the server; then its log must hold no crash of a request (see `crashes`)."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                return self.proc.returncode if self.proc else 0
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        finally:
            if crashed := self.crashes():
                raise AssertionError(f"a request crashed the API: {crashed}\n{self.log()[-3000:]}")

    def crashes(self) -> list[str]:
        """The API's crash handler's lines: no request in the suite may crash it, whatever it sent
        (tests/conftest.py checks the same of the servers in the test process)."""
        return [line for line in self.log().splitlines() if "unhandled error on " in line]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def new_key(self, credits: float = 10.0, name: str = "test") -> str:
        result = self.cli("keys", "create", "--name", name, "--credits", str(credits))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def worker_pids(self) -> list[int]:
        """The worker processes `serve` spawned (its child processes)."""
        assert self.proc is not None
        # Every thread's: workers restarted by the supervisor's watcher thread are that thread's children.
        tasks = Path(f"/proc/{self.proc.pid}/task").glob("*/children")
        return sorted(int(pid) for task in tasks for pid in task.read_text().split())

    def wait_for_workers(self, count: int, timeout: float = 30) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) >= count:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"expected {count} workers:\n{self.log()}")

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

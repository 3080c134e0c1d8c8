"""The parts of a scale-out deployment, each a real server in a subprocess: a PostgreSQL server of the
test's own (so a test may stop and restart it), an S3 wire-protocol server (moto's server mode), and
standalone `openveo worker` processes."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import httpx

from openveo.service.workers import WorkerRegistry
from openveo.store.db import Database
from tests.e2e.server import free_port, worker_command
from tests.helpers import required


class PrivatePostgres:
    """`initdb` + `pg_ctl` in a temporary directory, on a free port. PostgreSQL refuses to run as
    root, so as root its commands run as the `postgres` user."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        on_path = shutil.which("pg_ctl")
        if not found and not on_path:
            required("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
        self.bin = Path(found[-1] if found else on_path).parent
        self.root = Path(tempfile.mkdtemp(prefix="openveo-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _pg(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class S3Server:
    """moto's S3 server: the S3 wire protocol over HTTP, in a subprocess, with one bucket."""

    CREDENTIALS: ClassVar[dict[str, str]] = {
        "AWS_ACCESS_KEY_ID": "openveo-test",
        "AWS_SECRET_ACCESS_KEY": "openveo-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def __init__(self, log_path: Path, bucket: str = "openveo-results") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto server did not start:\n{log_path.read_text()}") from None
                time.sleep(0.2)
        self.client().create_bucket(Bucket=bucket)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, **_boto_credentials(self.CREDENTIALS))

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def env(self, prefix: str) -> dict[str, str]:
        """What every openveo process needs to use this server as its result store."""
        return {
            **self.CREDENTIALS,
            "OPENVEO_STORAGE": f"s3://{self.bucket}/{prefix}",
            "OPENVEO_S3_ENDPOINT_URL": self.url,
        }

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _boto_credentials(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


class WorkerProcess:
    """`openveo worker` on its own, as an operator starts it on a GPU host."""

    def __init__(self, data_dir: Path, env: dict[str, str], database_url: str, model: str = "tiny") -> None:
        self.data_dir = data_dir
        self.env = env
        self.database_url = database_url
        self.model = model
        self.log_path = data_dir / "worker.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            worker_command(self.model, self.data_dir),
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def registered_id(self, timeout: float = 120) -> str:
        """Its id in the worker registry, once it is taking jobs (its model loaded)."""
        db = Database(self.database_url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
                mine = [w for w in WorkerRegistry(db).all() if w.pid == self.pid and w.serving]
                if mine:
                    return mine[0].id
                time.sleep(0.2)
        finally:
            db.dispose()
        raise AssertionError(f"worker {self.pid} never started serving:\n{self.log()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

"""Soak: many clients on every protocol for minutes while the deployment is broken on a schedule,
then an audit of what is left. Nothing may be lost.

    python bench/soak.py [--clients 8] [--minutes 5] [--fault-every 30] [--out bench/results/soak.json]

The deployment is the real one: `openveo serve --model tiny` (one CPU worker) in a subprocess, on a
PostgreSQL server of the soak's own, with its result store on a small tmpfs (as root; elsewhere the
full-disk fault is left out and the report says so). Each client loops over the flows real clients
run: Segmind's sync call and its async submit → poll → result → download, the native create → poll
(or cancel) → download, OpenAI's create → poll → content (and sometimes delete), Vertex's
predictLongRunning → fetchPredictOperation with the video inline, Gemini's operation → file download,
and the lists. Faults, in turn, every `--fault-every` seconds:

- worker: SIGKILL of the worker (the supervisor starts another; its job is re-queued at lease end)
- server: SIGKILL of `openveo serve` and its workers, then a fresh start on the same port
- database: PostgreSQL stopped (fast) for a few seconds, then started
- disk: the result store filled to the last byte for a while, then freed

Clients retry what a fault interrupts, as SDKs do (a 503, a dropped connection), with a deadline.
Then, with the faults over, the audit (`audit()`): every job terminal; no job still holding a
reservation; every key's balance equal to its ledger; every succeeded job's files present and
MP4s; no file in the store that no live job owns; every accepted job a client was told about
reached an end and, where it succeeded, was downloaded whole; no synchronous call's video made and
charged after its caller was cut off. Writes JSON and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import cpu_name, summary_ms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' launchers of the real servers, shared with them
from tests.e2e.cluster import PrivatePostgres  # noqa: E402
from tests.e2e.server import Server  # noqa: E402

from openveo.core.job import Billing, JobStatus  # noqa: E402
from openveo.service import billing  # noqa: E402
from openveo.service.jobs import Jobs  # noqa: E402
from openveo.store.db import Database  # noqa: E402
from openveo.store.schema import api_keys, jobs  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VERTEX = "/v1beta1/publishers/google/models/veo-2.0-generate-001"
GEMINI = "/v1beta/models/veo-2.0-generate-001"
RETRYABLE = {502, 503, 504, 429}
FAULTS = ("worker", "server", "database", "disk")
FILLER = "soak-filler"  # the full-disk fault's own file in the result store


@dataclass
class Tally:
    """What the clients saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)  # 5xx, with when and what
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> flow, as the client was told
    ended: dict[str, str] = field(default_factory=dict)  # job id -> how the client saw it end
    downloaded: set[str] = field(default_factory=set)
    unreached: list[str] = field(default_factory=list)  # accepted, yet no end seen by the deadline
    transport_errors: int = 0
    unknown_submits: int = 0  # the connection dropped before the answer: accepted or not, unknown
    requests: int = 0


class Gone(Exception):
    """The service did not answer in time, through every retry."""


class Client:
    def __init__(self, url: str, key: str, tally: Tally, deadline_s: float) -> None:
        self.url = url
        self.key = key
        self.tally = tally
        self.deadline_s = deadline_s
        self.http = httpx.AsyncClient(timeout=60)

    async def call(self, label: str, method: str, path: str, *, retry: bool = True, **kwargs: Any):
        """One request, retried while a fault lasts (a dropped connection, a 503) if `retry`."""
        headers = {"x-api-key": self.key, "x-goog-api-key": self.key, **kwargs.pop("headers", {})}
        url = path if path.startswith("http") else f"{self.url}{path}"
        give_up = time.monotonic() + self.deadline_s
        delay = 0.2
        while True:
            started = time.monotonic()
            self.tally.requests += 1
            try:
                response = await self.http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError:
                self.tally.transport_errors += 1
                if not retry or time.monotonic() > give_up:
                    raise Gone(label) from None
            else:
                self.tally.statuses[response.status_code] += 1
                if response.status_code >= 500:
                    self.tally.server_errors.append(
                        {
                            "at": time.time(),
                            "label": label,
                            "status": response.status_code,
                            "body": response.text[:200],
                        }
                    )
                if response.status_code not in RETRYABLE or not retry or time.monotonic() > give_up:
                    self.tally.latencies[label].append(time.monotonic() - started)
                    return response
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def wait(self, label: str, path: str, done: Any, **kwargs: Any) -> Any:
        """Poll `path` until `done(body)` says the job ended; its last body."""
        method = kwargs.pop("method", "GET")
        give_up = time.monotonic() + self.deadline_s
        while time.monotonic() < give_up:
            response = await self.call(label, method, path, **kwargs)
            if response.status_code == 200 and done(response.json()):
                return response.json()
            await asyncio.sleep(0.5)
        raise Gone(label)

    def accepted(self, job_id: str, flow: str) -> None:
        self.tally.accepted[job_id] = flow

    def ended(self, job_id: str, how: str) -> None:
        self.tally.ended[job_id] = how

    async def download(self, job_id: str, label: str, url: str) -> None:
        response = await self.call(label, "GET", url)
        if response.status_code == 200 and _is_mp4(response.content):
            self.tally.downloaded.add(job_id)

    # ---- the flows -----------------------------------------------------------------------------

    async def segmind_sync(self, n: int) -> None:
        # No id comes back before the video, so a dropped call cannot be resumed: not retried.
        try:
            response = await self.call(
                "segmind v1", "POST", "/v1/veo-2", retry=False, json={"prompt": f"soak {n}", "seed": n}
            )
        except Gone:
            self.tally.unknown_submits += 1
            return
        job_id = response.headers.get("x-request-id")
        if response.status_code == 200 and job_id:
            self.accepted(job_id, "segmind v1")
            self.ended(job_id, "succeeded")
            if _is_mp4(response.content):
                self.tally.downloaded.add(job_id)

    async def segmind_async(self, n: int) -> None:
        response = await self._submit("segmind v2 submit", "/v2/veo-2", json={"prompt": f"soak {n}"})
        if response is None or response.status_code != 200:
            return
        job_id = response.json()["request_id"]
        self.accepted(job_id, "segmind v2")
        status = await self.wait(
            "segmind v2 status",
            f"/v2/requests/{job_id}/status",
            lambda b: b["status"] in ("COMPLETED", "FAILED"),
        )
        self.ended(job_id, status["status"])
        if status["status"] == "COMPLETED":
            result = (await self.call("segmind v2 result", "GET", f"/v2/requests/{job_id}")).json()
            await self.download(job_id, "download (signed link)", result["output"])

    async def native(self, n: int) -> None:
        response = await self.call(
            "native create",
            "POST",
            "/v1/jobs",
            json={"prompt": f"soak {n}"},
            headers={"idempotency-key": f"soak-{self.key[-6:]}-{n}"},
        )
        if response.status_code != 201:
            return
        job_id = response.json()["id"]
        self.accepted(job_id, "native")
        if n % 4 == 0:
            await self.call("native cancel", "POST", f"/v1/jobs/{job_id}/cancel")
        job = await self.wait(
            "native get",
            f"/v1/jobs/{job_id}",
            lambda b: b["status"] in ("succeeded", "failed", "canceled", "expired"),
        )
        self.ended(job_id, job["status"])
        if job["status"] == "succeeded":
            await self.download(job_id, "download (signed link)", job["videos"][0]["url"])

    async def openai(self, n: int) -> None:
        response = await self._submit(
            "openai create", "/v1/videos", json={"prompt": f"soak {n}", "seconds": "8"}
        )
        if response is None or response.status_code != 200:
            return
        video_id = response.json()["id"]
        job_id = video_id.removeprefix("video_")
        self.accepted(job_id, "openai")
        video = await self.wait(
            "openai retrieve", f"/v1/videos/{video_id}", lambda b: b["status"] in ("completed", "failed")
        )
        self.ended(job_id, video["status"])
        if video["status"] == "completed":
            await self.download(job_id, "openai content", f"/v1/videos/{video_id}/content")
            if n % 3 == 0:
                await self.call("openai delete", "DELETE", f"/v1/videos/{video_id}")

    async def vertex(self, n: int) -> None:
        response = await self._submit(
            "vertex predict", f"{VERTEX}:predictLongRunning", json={"instances": [{"prompt": f"soak {n}"}]}
        )
        if response is None or response.status_code != 200:
            return
        name = response.json()["name"]
        job_id = name.rsplit("/", 1)[-1]
        self.accepted(job_id, "vertex")
        operation = await self.wait(
            "vertex fetch",
            f"{VERTEX}:fetchPredictOperation",
            lambda b: b["done"],
            method="POST",
            json={"operationName": name},
        )
        self.ended(job_id, "succeeded" if "response" in operation else "failed")
        if "response" in operation:
            video = base64.b64decode(operation["response"]["videos"][0]["bytesBase64Encoded"])
            if _is_mp4(video):
                self.tally.downloaded.add(job_id)

    async def gemini(self, n: int) -> None:
        response = await self._submit(
            "gemini predict", f"{GEMINI}:predictLongRunning", json={"instances": [{"prompt": f"soak {n}"}]}
        )
        if response is None or response.status_code != 200:
            return
        name = response.json()["name"]
        job_id = name.rsplit("/", 1)[-1]
        self.accepted(job_id, "gemini")
        operation = await self.wait("gemini operation", f"/v1beta/{name}", lambda b: b["done"])
        self.ended(job_id, "succeeded" if "response" in operation else "failed")
        if "response" in operation:
            uri = operation["response"]["generateVideoResponse"]["generatedSamples"][0]["video"]["uri"]
            await self.download(job_id, "gemini download", uri)

    async def lists(self, _n: int) -> None:
        for label, path in (
            ("native list", "/v1/jobs?limit=20"),
            ("openai list", "/v1/videos?limit=20"),
            ("credits", "/v1/get-user-credits"),
        ):
            await self.call(label, "GET", path)

    async def _submit(self, label: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """A create call without an idempotency key: not resent after a dropped connection (it may
        have been accepted); a 503 said it was not, so that is retried."""
        try:
            return await self.call(label, "POST", path, retry=True, **kwargs)
        except Gone:
            self.tally.unknown_submits += 1
            return None

    FLOWS = ("segmind_sync", "segmind_async", "native", "openai", "vertex", "gemini", "lists")

    async def run(self, until: float, seed: int) -> None:
        chooser = random.Random(seed)
        n = seed * 100_000
        while time.monotonic() < until:
            n += 1
            flow = chooser.choice(self.FLOWS)
            try:
                await getattr(self, flow)(n)
            except Gone as exc:
                self.tally.unreached.append(f"{flow} ({exc})")
        await self.http.aclose()


def _is_mp4(data: bytes) -> bool:
    return len(data) > 1000 and data[4:8] == b"ftyp"


# ---- the deployment and its faults -------------------------------------------------------------


class Deployment:
    def __init__(self, root: Path, disk_mb: int) -> None:
        self.root = root
        self.postgres = PrivatePostgres()
        self.postgres.start()
        self.data_dir = root / "data"
        self.results = self.data_dir / "results"
        self.results.mkdir(parents=True)
        self.tmpfs = _mount_tmpfs(self.results, disk_mb)
        self.server = Server(
            self.data_dir,
            root / "models",
            database_url=self.postgres.url,
            env={"OPENVEO_LEASE_S": "10", "OPENVEO_RATE_LIMIT_PER_MINUTE": "0"},
        )
        self.server.start(timeout=120)
        self.faults: list[dict[str, Any]] = []

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.server.url}/readyz", timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the service never became ready:\n{self.server.log()[-3000:]}")

    async def inject(self, fault: str) -> None:
        started = time.time()
        note = await asyncio.to_thread(getattr(self, f"_{fault}"))
        self.faults.append(
            {"fault": fault, "at": started, "lasted_s": round(time.time() - started, 2), "note": note}
        )
        print(f"  fault: {fault} ({note})", flush=True)

    def _worker(self) -> str:
        pids = self.server.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return f"SIGKILL worker {pids}"

    def _server(self) -> str:
        pids = self.server.worker_pids()
        assert self.server.proc is not None
        self.server.proc.kill()
        self.server.proc.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        self.server.start(timeout=120)
        return "SIGKILL serve and its workers, started again"

    def _database(self) -> str:
        self.postgres.stop("fast")
        time.sleep(4)
        self.postgres.start()
        return "PostgreSQL stopped (fast) for 4 s"

    def _disk(self) -> str:
        if not self.tmpfs:
            return "skipped: the result store is not on a tmpfs of its own (needs root)"
        filler = self.results / FILLER
        with filler.open("wb") as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * (1 << 20))
        time.sleep(8)
        filler.unlink()
        return "result store full for 8 s"

    def close(self) -> None:
        self.server.stop()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.results)], check=False)
        self.postgres.close()


def _mount_tmpfs(path: Path, size_mb: int) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


# ---- the audit ---------------------------------------------------------------------------------


def audit(database_url: str, results: Path, tally: Tally) -> dict[str, Any]:
    """Everything that must hold once the dust settles; each list is what broke it (empty: held)."""
    db = Database(database_url)
    try:
        store = Jobs(db)
        with db.read() as conn:
            rows = conn.execute(jobs.select()).all()
            keys = conn.execute(api_keys.select()).all()
            ledgers = {k.id: (billing.balance(conn, k.id), billing.ledger_sum(conn, k.id)) for k in keys}
        found: dict[str, list[str]] = defaultdict(list)
        owned: set[Path] = set()
        for row in rows:
            job = store.get(row.id, include_deleted=True)
            if not job.status.done:
                found["not terminal"].append(f"{job.id} {job.status}")
            if job.billing == Billing.RESERVED:
                found["still reserved"].append(job.id)
            if job.status == JobStatus.SUCCEEDED and job.billing != Billing.CHARGED:
                found["succeeded, not charged"].append(job.id)
            if job.status != JobStatus.SUCCEEDED and job.billing == Billing.CHARGED:
                found["charged, not succeeded"].append(f"{job.id} {job.status}")
            if job.status == JobStatus.SUCCEEDED and row.deleted_at is None:
                for video in job.videos:
                    for key in filter(None, (video.video, video.thumbnail, video.spritesheet)):
                        path = results / key
                        owned.add(path)
                        if not path.is_file():
                            found["result file missing"].append(f"{job.id}: {key}")
                        elif key == video.video and not _is_mp4(path.read_bytes()):
                            found["result not an MP4"].append(f"{job.id}: {key}")
        for path in results.rglob("*"):
            if path.is_file() and path not in owned:
                found["file without a live job"].append(str(path.relative_to(results)))
        for key_id, (balance, ledger) in ledgers.items():
            if balance != ledger:
                found["balance is not its ledger"].append(f"key {key_id}: {balance} vs {ledger}")
        for row in rows:  # Segmind's sync call returns no id before the video: none may be made for nobody
            if (
                row.protocol == "segmind-v1"
                and row.status == JobStatus.SUCCEEDED
                and row.id not in tally.downloaded
            ):
                found["sync call charged, never answered"].append(row.id)
        by_id = {row.id: row for row in rows}
        for job_id, flow in tally.accepted.items():
            row = by_id.get(job_id)
            if row is None:
                found["accepted, not stored"].append(f"{flow} {job_id}")
            elif job_id not in tally.ended:
                found["accepted, no end seen by its client"].append(f"{flow} {job_id} ({row.status})")
            elif (
                row.status == JobStatus.SUCCEEDED
                and job_id not in tally.downloaded
                and row.deleted_at is None
            ):
                found["succeeded, not downloaded"].append(f"{flow} {job_id}")
        return {
            "jobs": len(rows),
            "by_status": dict(Counter(row.status for row in rows)),
            "by_protocol": dict(Counter(row.protocol for row in rows)),
            "problems": {name: items for name, items in found.items()},
        }
    finally:
        db.dispose()


def settle(database_url: str, timeout: float) -> None:
    """Wait for the queue to drain once the faults stop (jobs a fault interrupted run again)."""
    db = Database(database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with db.read() as conn:
                open_jobs = [r for r in conn.execute(jobs.select()).all() if not JobStatus(r.status).done]
            if not open_jobs:
                return
            time.sleep(1)
    finally:
        db.dispose()


# ---- the run -----------------------------------------------------------------------------------


async def soak(args: argparse.Namespace, deployment: Deployment) -> tuple[Tally, float]:
    tally = Tally()
    keys = [deployment.server.new_key(credits=100_000, name=f"soak-{i}") for i in range(args.keys)]
    until = time.monotonic() + args.minutes * 60
    clients = [
        Client(deployment.server.url, keys[i % len(keys)], tally, deadline_s=args.client_deadline)
        for i in range(args.clients)
    ]

    async def faults() -> None:
        schedule = [f for f in args.faults.split(",") if f]
        turn = 0
        while time.monotonic() + args.fault_every < until:
            await asyncio.sleep(args.fault_every)
            await deployment.inject(schedule[turn % len(schedule)])
            turn += 1

    started = time.monotonic()
    fault_task = asyncio.create_task(faults())
    await asyncio.gather(*(client.run(until, seed=i + 1) for i, client in enumerate(clients)))
    fault_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await fault_task
    return tally, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--keys", type=int, default=3, help="API keys the clients share (default 3)")
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the clients run (default 5)")
    parser.add_argument("--fault-every", type=float, default=30.0, help="seconds between faults (default 30)")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"the fault cycle (default {','.join(FAULTS)})"
    )
    parser.add_argument(
        "--client-deadline",
        type=float,
        default=180.0,
        help="how long a client keeps retrying one step (default 180 s)",
    )
    parser.add_argument("--disk-mb", type=int, default=256, help="size of the result store's tmpfs")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json", help="where the JSON report goes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="openveo-soak-") as folder:
        deployment = Deployment(Path(folder), args.disk_mb)
        try:
            print("waiting for the worker to load the tiny model ...", flush=True)
            deployment.wait_ready()
            print(
                f"soak: {args.clients} clients for {args.minutes} min, a fault every {args.fault_every} s",
                flush=True,
            )
            tally, elapsed = asyncio.run(soak(args, deployment))
            print("settling: the queue drains ...", flush=True)
            settle(deployment.postgres.url, timeout=300)
            report = audit(deployment.postgres.url, deployment.results, tally)
        finally:
            log_tail = deployment.server.log()[-4000:]
            deployment.close()

    fault_times = [(f["at"], f["at"] + f["lasted_s"] + 15) for f in deployment.faults]
    unexpected = [
        e
        for e in tally.server_errors
        if e["status"] != 503 and not any(a <= e["at"] <= b for a, b in fault_times)
    ]
    result = {
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "elapsed_s": round(elapsed, 1),
        "requests": tally.requests,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "transport_errors": tally.transport_errors,
        "submits_unknown": tally.unknown_submits,
        "accepted": len(tally.accepted),
        "downloaded": len(tally.downloaded),
        "client_gave_up": tally.unreached,
        "faults": deployment.faults,
        "server_errors": len(tally.server_errors),
        "server_errors_not_503_outside_faults": unexpected,
        "latency": {label: summary_ms(values) for label, values in sorted(tally.latencies.items())},
        "audit": report,
        "lost": sum(len(v) for v in report["problems"].values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("requests", "accepted", "downloaded", "server_errors", "lost")}))
    for name, items in report["problems"].items():
        print(f"AUDIT {name}: {len(items)}: {items[:5]}")
    if result["lost"]:
        print(log_tail)
    sys.exit(1 if result["lost"] or unexpected else 0)


if __name__ == "__main__":
    main()

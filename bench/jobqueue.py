"""Queue benchmark: how many jobs per second the job queue moves, and how long a queued job waits
before a worker claims it, on SQLite and on PostgreSQL. The engine is left out on purpose (each
claimed job is completed at once): this measures the queue, leases, billing and wake-ups only.

    python bench/jobqueue.py [--jobs 400] [--workers 2] [--database-url postgresql://.../EMPTY_DB]

1. Throughput: JOBS jobs are queued up front, then WORKERS worker processes claim and complete them
   as fast as they can (every claim and completion is a real transaction with its ledger rows).
2. Submit → claim latency: with the workers idle and listening (Unix sockets on SQLite,
   LISTEN/NOTIFY on PostgreSQL), jobs are submitted one at a time, 50 ms apart; the latency is the
   job's started_at minus its created_at.

Writes bench/results/queue-<database>-<host>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_name, summary_ms
from sqlalchemy import func, select

from openveo.core.job import JobResult, JobStatus
from openveo.core.request import GenerationRequest
from openveo.service import keys
from openveo.service.jobs import Jobs, JobSignals, QueuePolicy
from openveo.store.db import Database
from openveo.store.schema import jobs as jobs_table
from openveo.store.wakeups import Wakeups

RESULTS = Path(__file__).parent / "results"
MODEL = "tiny-wan2.2"
REQUEST = GenerationRequest(prompt="queue benchmark", model=MODEL, seed=1)
RESULT = JobResult(videos=(), width=160, height=96, fps=8, num_frames=41, steps=4)  # no engine runs


def services(url: str, data_dir: Path) -> tuple[Jobs, Wakeups]:
    db = Database(url)
    wakeups = Wakeups(db, data_dir)
    signals = JobSignals(queued=lambda: wakeups.ring("worker"), changed=lambda: None)
    return Jobs(db, QueuePolicy(lease_s=60), signals), wakeups


def worker(url: str, data_dir: str, name: str, stop_at: float, ready) -> None:
    """Claim and complete at once until nothing is left and `stop_at` has passed."""
    jobs, wakeups = services(url, Path(data_dir))
    bell = wakeups.listen("worker")
    time.sleep(0.5)  # let a PostgreSQL listener connect
    bell.drain()
    ready.set()
    while True:
        claimed = jobs.claim(name, [MODEL])
        if claimed is None:
            if time.time() >= stop_at:
                break
            bell.wait(0.2)
            continue
        jobs.complete(claimed.job.id, name, RESULT)
    bell.close()


def start_workers(url: str, data_dir: Path, count: int, seconds: float) -> list[mp.Process]:
    context = mp.get_context("spawn")
    stop_at = time.time() + seconds
    procs = []
    for index in range(count):
        ready = context.Event()
        proc = context.Process(target=worker, args=(url, str(data_dir), f"bench-{index}", stop_at, ready))
        proc.start()
        ready.wait(30)
        procs.append(proc)
    return procs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=400, help="jobs for the throughput run")
    parser.add_argument("--latency-jobs", type=int, default=100, help="jobs for the latency run")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite in a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="openveo-queue-") as tmp:
        data_dir = Path(tmp)
        url = args.database_url or f"sqlite:///{data_dir / 'openveo.db'}"
        Database(url).upgrade()
        jobs, _ = services(url, data_dir)
        key, _ = keys.create_key(jobs.db, "bench", 1e6)

        print(f"throughput: {args.jobs} jobs, {args.workers} workers ...", file=sys.stderr)
        for _ in range(args.jobs):
            jobs.submit(key, REQUEST, protocol="bench")
        for proc in start_workers(url, data_dir, args.workers, seconds=0):  # drain the queue, then stop
            proc.join()
        with jobs.db.read() as conn:
            first, last, count = conn.execute(
                select(
                    func.min(jobs_table.c.started_at), func.max(jobs_table.c.finished_at), func.count()
                ).where(jobs_table.c.status == JobStatus.SUCCEEDED)
            ).one()
        assert count == args.jobs, f"{count} of {args.jobs} completed"
        throughput = count / (last - first)

        print(f"latency: {args.latency_jobs} jobs one at a time ...", file=sys.stderr)
        procs = start_workers(url, data_dir, args.workers, seconds=args.latency_jobs * 0.05 + 5)
        ids = []
        for _ in range(args.latency_jobs):
            ids.append(jobs.submit(key, REQUEST, protocol="bench").id)
            time.sleep(0.05)
        for proc in procs:
            proc.join()
        latencies = []
        for job_id in ids:
            job = jobs.get(job_id)
            latencies.append(job.started_at - job.created_at)

    result = {
        "benchmark": "queue",
        "database": "postgresql" if args.database_url else "sqlite",
        "machine": {
            "host": socket.gethostname(),
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "workers": args.workers,
        "jobs": args.jobs,
        "throughput_jobs_per_s": round(throughput, 1),
        "submit_to_claim": summary_ms(latencies),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"queue-{result['database']}-{socket.gethostname()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    stats = result["submit_to_claim"]
    print("| database | workers | jobs/s | submit→claim p50 ms | p99 ms |\n|---|---|---|---|---|")
    row = (
        result["database"],
        args.workers,
        result["throughput_jobs_per_s"],
        stats["p50_ms"],
        stats["p99_ms"],
    )
    print("| " + " | ".join(str(v) for v in row) + " |")
    print(f"\nwritten to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Service benchmark: what the HTTP service adds on top of the engine, and how fast status polls are.

    python bench/service.py [--requests 20] [--pollers 100] [--seconds 10]

Starts the real `openveo serve --model tiny` (one CPU worker) in a temporary data dir, then measures:

1. Overhead: `POST /v1/veo-2` → last byte of the MP4, minus the job's own run time (the worker's
   `x-generation-time`: engine + MP4 encode). What remains is HTTP, auth, the credit reservation and
   enqueue, the wake-up and claim, completion, and sending the file back.
2. Status polling: N concurrent clients each polling `GET /v2/requests/{id}/status` once a second
   (the segmind SDK's default interval) for S seconds; latency of every poll. Measured twice: while
   the worker is generating (it competes for the same CPU here) and while it is idle.

Writes bench/results/service-<host>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import cpu_name, summary_ms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' launcher of the real `openveo serve`, shared with them
from tests.e2e.server import Server  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def measure_overhead(service: Server, key: str, count: int) -> dict:
    totals, overheads, engine = [], [], []
    with httpx.Client(timeout=300, headers={"x-api-key": key}) as client:
        client.post(f"{service.url}/v1/veo-2", json={"prompt": "warm-up", "seed": 1})  # loads, warms caches
        for i in range(count):
            started = time.perf_counter()
            response = client.post(f"{service.url}/v1/veo-2", json={"prompt": f"bench {i}", "seed": i})
            total = time.perf_counter() - started
            response.raise_for_status()
            run = float(response.headers["x-generation-time"])
            totals.append(total)
            engine.append(run)
            overheads.append(total - run)
    return {
        "overhead": summary_ms(overheads),
        "end_to_end": summary_ms(totals),
        "job_run": summary_ms(engine),
    }


async def poll_latencies(
    service: Server, key: str, job_ids: list[str], pollers: int, seconds: float
) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)
    async with httpx.AsyncClient(timeout=30, headers={"x-api-key": key}, limits=limits) as client:

        async def poller(index: int) -> None:
            await asyncio.sleep(index / pollers)  # spread the pollers over the interval, as real clients are
            deadline = time.perf_counter() + seconds
            job_id = job_ids[index % len(job_ids)]
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(f"{service.url}/v2/requests/{job_id}/status")
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))

        await asyncio.gather(*(poller(i) for i in range(pollers)))
    return latencies


def submit(service: Server, key: str, count: int) -> list[str]:
    with httpx.Client(headers={"x-api-key": key}) as client:
        return [
            client.post(f"{service.url}/v2/veo-2", json={"prompt": f"poll {i}"}).json()["request_id"]
            for i in range(count)
        ]


def wait_idle(service: Server, key: str, job_ids: list[str]) -> None:
    with httpx.Client(headers={"x-api-key": key}) as client:
        for job_id in job_ids:
            while client.get(f"{service.url}/v2/requests/{job_id}/status").json()["status"] not in (
                "COMPLETED",
                "FAILED",
            ):
                time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20, help="sequential v1 requests for the overhead")
    parser.add_argument("--pollers", type=int, default=100, help="concurrent status pollers")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each polling phase runs")
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database to run on (default: SQLite in a temporary dir)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="openveo-bench-") as tmp:
        data_dir = Path(tmp)
        service = Server(
            data_dir,
            data_dir / "models",
            env={"OPENVEO_RATE_LIMIT_PER_MINUTE": "0"},
            database_url=args.database_url,
        )
        key = service.new_key(credits=1_000_000, name="bench")
        service.start()
        try:
            print(f"overhead: {args.requests} sequential v1 requests ...", file=sys.stderr)
            overhead = measure_overhead(service, key, args.requests)
            busy_jobs = submit(service, key, 30)  # keeps the worker generating during the first phase
            print(f"polling: {args.pollers} pollers, worker busy ...", file=sys.stderr)
            busy = asyncio.run(poll_latencies(service, key, busy_jobs, args.pollers, args.seconds))
            for job_id in busy_jobs:  # stop generating
                httpx.post(f"{service.url}/v1/jobs/{job_id}/cancel", headers={"x-api-key": key})
            wait_idle(service, key, busy_jobs)
            print(f"polling: {args.pollers} pollers, worker idle ...", file=sys.stderr)
            idle = asyncio.run(poll_latencies(service, key, busy_jobs, args.pollers, args.seconds))
        finally:
            service.stop()

    result = {
        "benchmark": "service",
        "machine": {
            "host": socket.gethostname(),
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "gpu": None,
        },
        "model": "tiny (tiny-wan2.2, CPU)",
        "database": "postgresql" if args.database_url else "sqlite",
        "requests": args.requests,
        "pollers": args.pollers,
        "poll_interval_s": 1.0,
        **overhead,
        "poll_worker_busy": summary_ms(busy),
        "poll_worker_idle": summary_ms(idle),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"service-{result['database']}-{socket.gethostname()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ("v1 overhead (POST → last byte − job run)", result["overhead"]),
        ("v1 end to end", result["end_to_end"]),
        ("job run (engine + encode)", result["job_run"]),
        (f"status poll, {args.pollers} pollers, worker busy", result["poll_worker_busy"]),
        (f"status poll, {args.pollers} pollers, worker idle", result["poll_worker_idle"]),
    ]
    print("| measure | n | p50 ms | p99 ms | mean ms |\n|---|---|---|---|---|")
    for name, stats in rows:
        print(f"| {name} | {stats['n']} | {stats['p50_ms']} | {stats['p99_ms']} | {stats['mean_ms']} |")
    print(f"\nwritten to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

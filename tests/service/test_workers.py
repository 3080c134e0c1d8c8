"""The worker registry on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time

from openveo.core.request import GenerationRequest
from openveo.service import keys, workers
from openveo.service.jobs import Jobs
from openveo.service.workers import WorkerRegistry


def test_live_workers_queue_and_failures(database, monkeypatch):
    registry = WorkerRegistry(database)
    registry.register("host-a:1", "host-a", 1, ["tiny-wan2.2"], "cuda:0")
    registry.register("host-b:2", "host-b", 2, ["tiny-ltx"], "cpu")
    registry.beat("host-a:1", "busy", "job-1")
    registry.beat("host-b:2", "stopped")

    key, _ = keys.create_key(database, "k", 1.0)
    jobs = Jobs(database)
    request = GenerationRequest(prompt="x", model="tiny-wan2.2", seed=1)
    jobs.submit(key, request, protocol="test")
    jobs.submit(key, GenerationRequest(prompt="x", model="tiny-ltx", seed=1), protocol="test")
    failed = jobs.submit(key, request, protocol="test")
    jobs.claim("host-a:1", ["tiny-wan2.2"])  # the oldest tiny-wan2.2 job
    jobs.fail(jobs.page(key.id, newest_first=False)[0][0].id, "host-a:1", "out of memory", retry=False)

    report = registry.status()
    by_id = {w.id: w for w in report.workers}
    assert by_id["host-a:1"].live and by_id["host-a:1"].state == "busy"
    assert by_id["host-a:1"].current_job == "job-1" and by_id["host-a:1"].models == ["tiny-wan2.2"]
    assert not by_id["host-b:2"].live  # stopped
    assert report.queue == {"tiny-wan2.2": 1, "tiny-ltx": 1}
    assert report.waiting_without_worker == ["tiny-ltx"]
    assert report.recent_failures[0].error == "out of memory"
    assert registry.serving() == {"tiny-wan2.2": 1}
    assert registry.readiness(["tiny-wan2.2"]).problems == ["no worker is serving tiny-ltx (1 queued)"]
    assert failed.id  # still queued behind the failed one

    later = time.time() + workers.STALE_S + 1
    monkeypatch.setattr(workers.time, "time", lambda: later)  # a silence longer than STALE_S
    assert registry.serving() == {}
    assert registry.readiness(["tiny-wan2.2"]).problems == [
        "no worker is serving tiny-ltx (1 queued)",
        "no worker is serving tiny-wan2.2 (1 queued)",
    ]

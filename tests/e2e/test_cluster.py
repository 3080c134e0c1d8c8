"""A scale-out deployment on one machine, every part a real server in its own process: PostgreSQL (the
test's own, so it can be restarted), an S3 wire-protocol server (moto), two API servers with no
workers of their own and two standalone workers, each process with its own data dir, so they share
nothing but the database and the bucket. (They share the network namespace: the parts talk over
127.0.0.1 ports, exactly as they would across hosts.)"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path

import httpx
import pytest

from openveo.service.billing import to_micro
from openveo.service.keys import hash_secret
from openveo.service.workers import WorkerRegistry
from openveo.store.db import Database
from openveo.store.schema import api_keys, jobs, ledger
from tests.e2e.cluster import PrivatePostgres, S3Server, WorkerProcess
from tests.e2e.server import Server
from tests.helpers import decode

PREFIX = "cluster"
TINY_5S = 0.05  # price of one 5 s tiny video


@dataclass
class Cluster:
    root: Path
    models_root: Path
    pg: PrivatePostgres
    s3: S3Server
    env: dict[str, str]
    apis: list[Server] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    def add_worker(self, name: str, model: str = "tiny") -> WorkerProcess:
        worker = WorkerProcess(self.root / name, self.env, self.pg.url, model).start()
        self.workers.append(worker)
        return worker

    def worker_of(self, job_row) -> WorkerProcess:
        """The process running a job (worker ids are host:pid:random)."""
        [worker] = [w for w in self.workers if f":{w.pid}:" in job_row.worker_id]
        return worker

    def db(self) -> Database:
        return Database(self.pg.url)

    def key(self, credits: float) -> str:
        return self.apis[0].new_key(credits=credits)

    def submit(self, api: Server, key: str, **fields) -> str:
        """A native job (the API that lets a test pick model and steps); returns its id."""
        response = httpx.post(
            f"{api.url}/v1/jobs",
            json={"prompt": "a busy harbour", **fields},
            headers={"x-api-key": key},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def job(self, job_id: str):
        return self.apis[0].job_row(job_id)

    def wait_running(self, job_id: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.job(job_id)
            if row.status == "running" and row.worker_id:
                return row
            assert row.status == "queued", row.status
            time.sleep(0.02)
        raise AssertionError(f"{job_id} never started")

    def wait_done(self, key: str, job_ids: list[str], timeout: float = 300) -> None:
        """Wait for every job to finish, asking the API servers in turn (any of them knows every job)."""
        pending, servers = set(job_ids), cycle(self.apis)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                reply = httpx.get(f"{next(servers).url}/v1/jobs/{job_id}", headers={"x-api-key": key})
                if reply.status_code == 200 and reply.json()["status"] in ("succeeded", "failed", "canceled"):
                    pending.discard(job_id)
            time.sleep(0.3)
        assert not pending, f"{len(pending)} jobs unfinished:\n" + "\n".join(
            w.log()[-3000:] for w in self.workers
        )

    def assert_each_charged_once(self, key: str, job_ids: list[str], granted: float) -> list:
        """Every job succeeded, its ledger is exactly reserve + charge, and the balance agrees."""
        db = self.db()
        try:
            with db.read() as conn:
                rows = conn.execute(jobs.select().where(jobs.c.id.in_(job_ids))).all()
                kinds = Counter()
                for entry in conn.execute(ledger.select().where(ledger.c.job_id.in_(job_ids))):
                    kinds[(entry.job_id, entry.kind)] += 1
                account = conn.execute(api_keys.select().where(api_keys.c.key_hash == hash_secret(key))).one()
        finally:
            db.dispose()
        assert sorted(r.status for r in rows) == ["succeeded"] * len(job_ids), Counter(r.status for r in rows)
        for job_id in job_ids:
            assert (kinds[(job_id, "reserve")], kinds[(job_id, "charge")], kinds[(job_id, "refund")]) == (
                1,
                1,
                0,
            )
        assert account.balance == to_micro(granted) - sum(r.cost for r in rows)
        return rows


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, tiny_models: Path) -> Iterator[Cluster]:
    from openveo.core.catalog import Catalog
    from openveo.engine.tiny import ensure_tiny
    from openveo.engine.weights import local_dir

    ltx = Catalog().resolve("tiny-ltx")
    ensure_tiny(ltx.repo, local_dir(ltx, tiny_models))  # built once here, not raced by two workers
    root = tmp_path_factory.mktemp("cluster")
    with contextlib.ExitStack() as stack:
        pg = PrivatePostgres()
        stack.callback(pg.close)
        pg.start()
        s3 = S3Server(root / "s3.log")
        stack.callback(s3.close)
        env = {
            **os.environ,
            **s3.env(PREFIX),
            "OPENVEO_DATABASE_URL": pg.url,
            "OPENVEO_MODELS_DIR": str(tiny_models),
            "OPENVEO_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "OPENVEO_LEASE_S": "3",
            "OPENVEO_RATE_LIMIT_PER_MINUTE": "0",
            "OMP_NUM_THREADS": "1",  # two CPU workers on two cores: one thread each, not two on both
        }
        made = Cluster(root, tiny_models, pg, s3, env)
        for name in ("api-a", "api-b"):
            api = Server(root / name, tiny_models, workers=0, env=env, database_url=pg.url)
            made.apis.append(stack.enter_context(api))
        for name in ("worker-1", "worker-2"):
            made.add_worker(name)
        stack.callback(lambda: [w.stop() for w in made.workers])
        for worker in made.workers:
            worker.registered_id()
        yield made


def test_forty_jobs_across_two_api_servers_run_exactly_once(cluster: Cluster, tmp_path: Path):
    key = cluster.key(credits=40 * TINY_5S)
    a, b = cluster.apis
    ids = []
    for index in range(40):
        api = (a, b)[index % 2]
        reply = httpx.post(
            f"{api.url}/v2/veo-2",
            json={"prompt": f"harbour {index}", "seed": index},
            headers={"x-api-key": key},
        )
        assert reply.status_code == 200, reply.text
        ids.append(reply.json()["request_id"])
    cluster.wait_done(key, ids)
    rows = cluster.assert_each_charged_once(key, ids, granted=40 * TINY_5S)
    assert all(r.attempts == 1 for r in rows)
    assert len({r.worker_id for r in rows}) == 2  # both workers took jobs

    stored = cluster.s3.keys(f"{PREFIX}/jobs/")
    for job_id in ids:  # each job's files, once, in the bucket
        assert f"{PREFIX}/jobs/{job_id}/attempt-1/video-0.mp4" in stored
    assert len(stored) == 40 * 3  # video, thumbnail, spritesheet

    # Whichever server accepted a job, the other answers for it, and the output is a presigned S3 URL.
    for job_id, other in ((ids[0], b), (ids[1], a)):
        result = httpx.get(f"{other.url}/v2/requests/{job_id}", headers={"x-api-key": key}).json()
        assert result["status"] == "COMPLETED" and result["output"].startswith(cluster.s3.url + "/")
        video = httpx.get(result["output"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        path = tmp_path / f"{job_id}.mp4"
        path.write_bytes(video.content)
        decoded = decode(path)
        assert abs(decoded["duration"] - 5) <= 1 / decoded["fps"] + 1e-3

    # One deployment, one secret: both servers give a key the same webhook secret.
    secrets = {
        httpx.get(f"{api.url}/v1/webhook-secret", headers={"x-api-key": key}).json()["secret"]
        for api in cluster.apis
    }
    assert len(secrets) == 1


def test_a_sync_request_on_one_server_is_answered_while_a_remote_worker_runs_it(cluster: Cluster):
    key = cluster.key(credits=1)
    reply = httpx.post(
        f"{cluster.apis[1].url}/v1/veo-2",
        json={"prompt": "sync across hosts"},
        headers={"x-api-key": key},
        timeout=120,
    )
    assert reply.status_code == 200 and reply.headers["content-type"] == "video/mp4"
    assert reply.headers["x-remaining-credits"] == "0.95"


def test_a_sigkilled_worker_s_job_finishes_on_the_other_worker(cluster: Cluster):
    key = cluster.key(credits=1)
    job_id = cluster.submit(cluster.apis[0], key, steps=100)
    running = cluster.wait_running(job_id)
    victim = cluster.worker_of(running)
    victim.signal(signal.SIGKILL)
    victim.wait()
    cluster.workers.remove(victim)
    cluster.wait_done(key, [job_id], timeout=120)
    [row] = cluster.assert_each_charged_once(key, [job_id], granted=1)
    assert row.attempts == 2 and row.worker_id != running.worker_id
    cluster.add_worker(f"worker-after-kill-{victim.pid}").registered_id()


def test_a_sigtermed_worker_finishes_its_job_first(cluster: Cluster):
    key = cluster.key(credits=1)
    first = cluster.submit(cluster.apis[0], key, steps=100)
    running = cluster.wait_running(first)
    leaving = cluster.worker_of(running)
    leaving.signal(signal.SIGTERM)
    second = cluster.submit(cluster.apis[1], key)
    assert leaving.wait() == 0  # it exits by itself once its job is done
    cluster.workers.remove(leaving)
    cluster.wait_done(key, [first, second])
    rows = {r.id: r for r in cluster.assert_each_charged_once(key, [first, second], granted=1)}
    assert rows[first].worker_id == running.worker_id and rows[first].attempts == 1
    assert rows[second].worker_id != running.worker_id  # a draining worker claims nothing new
    db = cluster.db()
    try:
        [gone] = [w for w in WorkerRegistry(db).all() if w.id == running.worker_id]
    finally:
        db.dispose()
    assert gone.state == "stopped" and not gone.live
    cluster.add_worker(f"worker-after-term-{leaving.pid}").registered_id()


def readiness(api: Server) -> tuple[int, dict]:
    reply = httpx.get(f"{api.url}/readyz")
    return reply.status_code, reply.json()


def test_workers_claim_only_their_model_and_readiness_tells_who_is_missing(cluster: Cluster):
    key = cluster.key(credits=5)
    waiting = cluster.submit(cluster.apis[0], key, model="tiny-ltx")
    time.sleep(2)  # two idle tiny-wan2.2 workers had every chance to take it
    assert cluster.job(waiting).status == "queued"
    for api in cluster.apis:
        code, report = readiness(api)
        assert code == 503 and report["database"] == "ok"
        assert report["problems"] == ["no worker is serving tiny-ltx (1 queued)"]
        assert report["models"]["tiny-wan2.2"]["workers"] == 2

    ltx = cluster.add_worker("worker-ltx", model="tiny-ltx")
    ltx_id = ltx.registered_id()
    others = [cluster.submit(cluster.apis[i % 2], key) for i in range(4)]
    cluster.wait_done(key, [waiting, *others])
    rows = {r.id: r for r in cluster.assert_each_charged_once(key, [waiting, *others], granted=5)}
    assert rows[waiting].worker_id == ltx_id
    assert all(rows[job_id].worker_id != ltx_id for job_id in others)
    code, report = readiness(cluster.apis[1])
    assert code == 200 and report["ready"] is True

    ltx.signal(signal.SIGTERM)  # the last tiny-ltx worker leaves; nothing is routed to it, so ready
    assert ltx.wait() == 0
    cluster.workers.remove(ltx)
    assert readiness(cluster.apis[0])[0] == 200
    stranded = cluster.submit(cluster.apis[1], key, model="tiny-ltx")  # until a job for it waits
    code, report = readiness(cluster.apis[0])
    assert code == 503 and report["problems"] == ["no worker is serving tiny-ltx (1 queued)"]
    canceled = httpx.post(f"{cluster.apis[0].url}/v1/jobs/{stranded}/cancel", headers={"x-api-key": key})
    assert canceled.json()["status"] == "canceled"
    assert readiness(cluster.apis[1])[0] == 200


def test_a_postgres_restart_mid_run_loses_nothing(cluster: Cluster):
    key = cluster.key(credits=10 * TINY_5S)
    ids = [cluster.submit(cluster.apis[i % 2], key, steps=40) for i in range(10)]
    cluster.wait_running(ids[0])
    cluster.pg.stop("fast")  # every connection is cut, and nothing answers for a while
    try:
        down = httpx.get(f"{cluster.apis[0].url}/v2/requests/{ids[0]}/status", headers={"x-api-key": key})
        assert down.status_code == 503 and "database is unavailable" in down.json()["error"]
        time.sleep(3)
    finally:
        cluster.pg.start()
    cluster.wait_done(key, ids)
    cluster.assert_each_charged_once(key, ids, granted=10 * TINY_5S)
    for worker in cluster.workers:  # the same processes, still serving, never restarted
        assert worker.proc.poll() is None
        worker.registered_id(timeout=30)
    for api in cluster.apis:
        assert readiness(api)[0] == 200


def test_results_in_s3_expire_with_their_retention(cluster: Cluster, tiny_models: Path):
    """One `serve` with its own worker, on SQLite, storing results in the bucket: the output is a
    presigned URL, and when the retention ends housekeeping deletes the objects."""
    env = {**cluster.env, **cluster.s3.env("brief"), "OPENVEO_RETENTION_S": "2"}
    env.pop("OPENVEO_DATABASE_URL")
    with Server(cluster.root / "brief", tiny_models, env=env) as server:
        key = server.new_key(credits=1)
        job_id = httpx.post(
            f"{server.url}/v2/veo-2", json={"prompt": "brief"}, headers={"x-api-key": key}
        ).json()["request_id"]
        server.wait_status(key, job_id, {"COMPLETED"})
        output = httpx.get(f"{server.url}/v2/requests/{job_id}", headers={"x-api-key": key}).json()["output"]
        assert output.startswith(f"{cluster.s3.url}/{cluster.s3.bucket}/brief/jobs/{job_id}/")
        assert httpx.get(output).status_code == 200
        deadline = time.monotonic() + 20
        while cluster.s3.keys(f"brief/jobs/{job_id}/") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert cluster.s3.keys(f"brief/jobs/{job_id}/") == []
        expired = httpx.get(f"{server.url}/v2/requests/{job_id}", headers={"x-api-key": key})
        assert expired.status_code == 422 and "expired" in expired.json()["error"]

"""Failure handling with the real server: a worker killed mid-job, and a job that keeps failing."""

from __future__ import annotations

import os
import signal

import httpx

from openveo.store.schema import jobs, ledger
from tests.e2e.server import Server


def job_and_ledger(server: Server, job_id: str):
    db = server.database()
    try:
        with db.read() as conn:
            job = conn.execute(jobs.select().where(jobs.c.id == job_id)).one()
            kinds = [r.kind for r in conn.execute(ledger.select().where(ledger.c.job_id == job_id))]
            return job, kinds
    finally:
        db.dispose()


def test_a_sigkilled_worker_s_job_reruns_and_is_charged_once(make_server):
    with make_server("kill", env={"OPENVEO_LEASE_S": "2"}) as server:
        key = server.new_key(credits=1)
        [worker] = server.wait_for_workers(1)
        job_id = httpx.post(
            f"{server.url}/v2/veo-2", json={"prompt": "interrupted"}, headers={"x-api-key": key}
        ).json()["request_id"]
        server.wait_status(key, job_id, {"PROCESSING"})
        os.kill(worker, signal.SIGKILL)
        assert server.wait_status(key, job_id, {"COMPLETED", "FAILED"}) == "COMPLETED"
        job, kinds = job_and_ledger(server, job_id)
        assert job.attempts == 2 and kinds == ["reserve", "charge"]
        assert server.worker_pids() != [worker]  # the supervisor started a new worker


def broken(server: Server) -> Server:
    """A real server whose every result write fails: a file sits where the results folder should be."""
    server.data_dir.mkdir(parents=True)
    (server.data_dir / "results").write_text("a file where the results folder should be: every write fails")
    return server


def test_a_job_that_keeps_failing_ends_failed_and_refunded(make_server):
    with broken(make_server("broken", env={"OPENVEO_MAX_ATTEMPTS": "2"})) as server:
        key = server.new_key(credits=1)
        response = httpx.post(
            f"{server.url}/v1/veo-2", json={"prompt": "doomed"}, headers={"x-api-key": key}, timeout=120
        )
        assert response.status_code == 500
        assert "not charged" in response.json()["error"]
        job_id = response.json()["error"] and _only_job(server)
        job, kinds = job_and_ledger(server, job_id)
        assert job.status == "failed" and job.attempts == 2
        assert kinds == ["reserve", "refund"]
        credits = httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()
        assert credits == {"credits": 1}


def _only_job(server: Server) -> str:
    db = server.database()
    try:
        with db.read() as conn:
            [job_id] = conn.execute(jobs.select().with_only_columns(jobs.c.id)).scalars().all()
            return job_id
    finally:
        db.dispose()


def test_a_failed_generation_in_each_protocols_own_form(tmp_path, tiny_models):
    """Google: a done operation with an error. OpenAI: a video with status failed. Both refunded."""
    import time

    from google import genai
    from google.genai import types
    from openai import OpenAI

    with broken(
        Server(tmp_path / "broken-protocols", tiny_models, env={"OPENVEO_MAX_ATTEMPTS": "1"})
    ) as server:
        key = server.new_key(credits=1)
        google = genai.Client(
            enterprise=True, api_key=key, http_options=types.HttpOptions(base_url=server.url)
        )
        operation = google.models.generate_videos(model="veo-2.0-generate-001", prompt="doomed")
        while not operation.done:
            time.sleep(0.3)
            operation = google.operations.get(operation)
        assert operation.error["code"] == 13 and "not charged" in operation.error["message"]
        assert operation.response is None

        sora = OpenAI(base_url=f"{server.url}/v1", api_key=key).videos.create_and_poll(
            prompt="doomed", seconds="8", size="1280x720"
        )
        assert sora.status == "failed" and sora.error.code == "generation_failed"

        credits = httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()
        assert credits == {"credits": 1}

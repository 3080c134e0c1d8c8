"""The service's life: the first key, a standalone worker and its drain, results that expire."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, worker_command
from tests.helpers import run_cli


def test_a_first_run_makes_a_key_and_shows_it_once(make_server):
    with make_server("fresh", workers=0) as server:
        pass
    found = re.findall(r"^\s+(ov-\S+)$", server.log(), flags=re.MULTILINE)
    assert len(found) == 1
    with make_server("fresh", same_as=server, workers=0) as again:
        credits = httpx.get(f"{again.url}/v1/get-user-credits", headers={"x-api-key": found[0]}).json()
        assert credits == {"credits": 100}
    assert re.findall(r"^\s+(ov-\S+)$", again.log(), flags=re.MULTILINE) == found  # not printed again


def test_a_standalone_worker_serves_the_queue_and_drains_on_sigterm(make_server):
    with make_server("split", workers=0) as server:
        key = server.new_key(credits=5)
        worker = subprocess.Popen(
            worker_command("tiny", server.data_dir),
            env=server.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            job_id = httpx.post(
                f"{server.url}/v2/veo-2", json={"prompt": "drained"}, headers={"x-api-key": key}
            ).json()["request_id"]
            server.wait_status(key, job_id, {"PROCESSING"})
            worker.send_signal(signal.SIGTERM)  # drain: the running job still finishes
            assert worker.wait(60) == 0
            assert server.wait_status(key, job_id, {"COMPLETED", "FAILED"}, timeout=5) == "COMPLETED"
            later = httpx.post(
                f"{server.url}/v2/veo-2", json={"prompt": "nobody left"}, headers={"x-api-key": key}
            ).json()["request_id"]
            time.sleep(1)
            assert server.wait_status(key, later, {"QUEUED"}, timeout=2) == "QUEUED"  # waits, not failed
        finally:
            worker.kill()
            worker.wait()
        assert "draining" in worker.stderr.read()


def test_results_expire_after_the_retention(make_server):
    with make_server("retention", env={"OPENVEO_RETENTION_S": "1"}) as server:
        key = server.new_key(credits=1)
        response = httpx.post(f"{server.url}/v2/veo-2", json={"prompt": "brief"}, headers={"x-api-key": key})
        job_id = response.json()["request_id"]
        server.wait_status(key, job_id, {"COMPLETED"})
        output = httpx.get(f"{server.url}/v2/requests/{job_id}", headers={"x-api-key": key}).json()["output"]
        files = server.data_dir / "results" / "jobs" / job_id
        assert files.is_dir()
        deadline = time.monotonic() + 15
        while files.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not files.exists()  # housekeeping deleted the files
        assert httpx.get(output).status_code == 403  # the link has expired too
        expired = httpx.get(f"{server.url}/v2/requests/{job_id}", headers={"x-api-key": key})
        assert expired.status_code == 422 and "expired" in expired.json()["error"]
        credits = httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()
        assert credits == {"credits": 0.95}  # an expired result was still delivered: no refund


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_workers_never_outlive_the_server(tmp_path, tiny_models, how):
    server = Server(tmp_path / "stop", tiny_models).start()
    workers = server.wait_for_workers(1)
    server.proc.send_signal(how)
    server.proc.wait(30)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), server.log()


def test_status_shows_live_workers_and_the_admin_endpoint_needs_its_token(make_server):
    with make_server("status", env={"OPENVEO_ADMIN_TOKEN": "s3cret"}) as server:
        server.wait_for_workers(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report = json.loads(server.cli("status", "--json").stdout)
            live = [w for w in report["workers"] if w["live"] and w["state"] == "idle"]
            if live:
                break
            time.sleep(0.5)
        assert live and live[0]["models"] == ["tiny-wan2.2"] and live[0]["device"] == "cpu"
        assert httpx.get(f"{server.url}/v1/admin/status").status_code == 401
        admin = httpx.get(f"{server.url}/v1/admin/status", headers={"authorization": "Bearer s3cret"})
        assert admin.status_code == 200 and admin.json()["workers"][0]["live"]
        human = server.cli("status")
        assert human.returncode == 0 and "tiny-wan2.2" in human.stdout
    report = json.loads(server.cli("status", "--json").stdout)
    assert [w["state"] for w in report["workers"]] == ["stopped"]  # it said goodbye on the way out


def test_a_worker_group_runs_one_worker_per_gpu_and_drains_them_all(tmp_path, tiny_models):
    """`openveo worker --gpus 0,1` on this CPU machine: each worker is pinned to its GPU index (there
    is no GPU, so each falls back to the CPU), and SIGTERM to the group drains every worker."""
    from openveo.service.workers import WorkerRegistry

    with Server(tmp_path / "group", tiny_models, workers=0) as server:
        key = server.new_key(credits=1)
        group = subprocess.Popen(
            worker_command("tiny", server.data_dir, "--gpus", "0,1"),
            env=server.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        db = server.database()
        try:
            deadline = time.monotonic() + 120
            serving = []
            while len(serving) < 2 and time.monotonic() < deadline:
                assert group.poll() is None, group.stderr.read()
                serving = [w for w in WorkerRegistry(db).all() if w.serving]
                time.sleep(0.2)
            assert len(serving) == 2
            children = Path(f"/proc/{group.pid}/task/{group.pid}/children").read_text().split()
            assert sorted(w.pid for w in serving) == sorted(int(pid) for pid in children)

            job_id = httpx.post(
                f"{server.url}/v1/jobs", json={"prompt": "grouped", "steps": 100}, headers={"x-api-key": key}
            ).json()["id"]
            server.wait_status(key, job_id, {"PROCESSING"})
            group.send_signal(signal.SIGTERM)
            assert group.wait(120) == 0
            assert server.wait_status(key, job_id, {"COMPLETED", "FAILED"}, timeout=5) == "COMPLETED"
            assert [w.state for w in WorkerRegistry(db).all()] == ["stopped", "stopped"]
        finally:
            if group.poll() is None:
                group.kill()
            db.dispose()


def test_worker_refuses_bad_gpus_and_an_unusable_store(tmp_path):
    bad_gpus = run_cli("worker", "--model", "tiny", "--gpus", "first", "--data-dir", str(tmp_path))
    assert bad_gpus.returncode == 2 and "--gpus" in bad_gpus.stderr and "0,1" in bad_gpus.stderr
    bad_store = run_cli("serve", "--model", "tiny", "--storage", "gs://bucket", "--data-dir", str(tmp_path))
    assert bad_store.returncode == 3 and "--storage" in bad_store.stderr and "s3://" in bad_store.stderr


def test_readiness_follows_the_workers_of_the_served_model(tmp_path, tiny_models):
    with Server(tmp_path / "ready", tiny_models, workers=0) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}

        def ready() -> tuple[int, list[str]]:
            reply = httpx.get(f"{server.url}/readyz")
            return reply.status_code, reply.json()["problems"]

        assert ready() == (503, ["no worker is serving tiny-wan2.2"])
        for _ in range(2):  # a worker comes, readiness follows; it leaves, readiness goes
            worker = subprocess.Popen(worker_command("tiny", server.data_dir), env=server.env)
            deadline = time.monotonic() + 120
            while ready()[0] != 200 and time.monotonic() < deadline:
                assert worker.poll() is None
                time.sleep(0.2)
            assert ready() == (200, [])
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(60) == 0
            assert ready() == (503, ["no worker is serving tiny-wan2.2"])

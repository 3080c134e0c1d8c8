"""Credits and the queue through the real server: concurrent submits, rate limits, disconnecting
clients, and jobs that survive a restart. The server here runs no workers (`--workers 0`), so jobs
stay queued for as long as a test needs them to."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from openveo.service import billing
from openveo.service.keys import hash_secret
from openveo.store.schema import api_keys, ledger
from tests.e2e.conftest import BACKENDS, fresh_database
from tests.e2e.server import Server


@pytest.fixture(scope="module", params=BACKENDS)
def queue_only(request, tmp_path_factory, tiny_models):
    with fresh_database(request.param) as url:
        server = Server(
            tmp_path_factory.mktemp("queue-only"),
            tiny_models,
            workers=0,
            env={"OPENVEO_RATE_LIMIT_PER_MINUTE": "20"},
            database_url=url,
        )
        with server:
            yield server


def key_row(server: Server, secret: str):
    db = server.database()
    try:
        # One snapshot for all three reads (PostgreSQL's default, read committed, gives each statement
        # its own: a refund committing between them made a balance without it look settled).
        with db.engine.connect().execution_options(isolation_level="SERIALIZABLE") as conn, conn.begin():
            row = conn.execute(api_keys.select().where(api_keys.c.key_hash == hash_secret(secret))).one()
            return (
                row,
                billing.ledger_sum(conn, row.id),
                conn.execute(ledger.select().where(ledger.c.key_id == row.id)).all(),
            )
    finally:
        db.dispose()


def test_twenty_concurrent_submits_with_credits_for_ten(queue_only):
    key = queue_only.new_key(credits=0.5)  # ten 5 s tiny videos at 0.05

    def submit(_):
        return httpx.post(
            f"{queue_only.url}/v2/veo-2",
            json={"prompt": "a busy street"},
            headers={"x-api-key": key},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(submit, range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 10 + [406] * 10
    assert all("insufficient credits" in r.json()["error"] for r in responses if r.status_code == 406)
    row, ledger_total, entries = key_row(queue_only, key)
    assert row.balance == 0 == ledger_total
    assert sorted(e.kind for e in entries) == ["grant"] + ["reserve"] * 10


def test_rate_limit_answers_429_with_retry_after(queue_only):
    key = queue_only.new_key(credits=100)
    statuses = []
    for _ in range(21):
        response = httpx.post(f"{queue_only.url}/v2/veo-2", json={"prompt": "x"}, headers={"x-api-key": key})
        statuses.append(response.status_code)
    assert statuses[:20] == [200] * 20
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1 and "rate limit" in response.json()["error"]
    row, ledger_total, _ = key_row(queue_only, key)
    assert row.balance == ledger_total == billing.to_micro(100 - 20 * 0.05)


def test_a_disconnecting_v1_client_cancels_and_is_refunded(queue_only):
    key = queue_only.new_key(credits=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{queue_only.url}/v1/veo-2",
            json={"prompt": "never mind"},
            headers={"x-api-key": key},
            timeout=1.5,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row, ledger_total, entries = key_row(queue_only, key)
        if any(e.kind == "refund" for e in entries):  # the balance must then agree with the ledger
            break
        time.sleep(0.1)
    kinds = sorted(e.kind for e in entries)
    assert kinds == ["grant", "refund", "reserve"]
    assert row.balance == ledger_total == billing.to_micro(1)
    job_id = next(e.job_id for e in entries if e.kind == "refund")
    assert queue_only.job_row(job_id).status == "canceled"


def test_native_cancel_of_a_queued_job_refunds(queue_only):
    key = queue_only.new_key(credits=1)
    headers = {"authorization": f"Bearer {key}"}
    created = httpx.post(f"{queue_only.url}/v1/jobs", json={"prompt": "x", "model": "veo-2"}, headers=headers)
    assert created.status_code == 201 and created.json()["queue_position"] >= 0
    job_id = created.json()["id"]
    canceled = httpx.post(f"{queue_only.url}/v1/jobs/{job_id}/cancel", headers=headers).json()
    assert canceled["status"] == "canceled" and not canceled["charged"]
    assert httpx.get(f"{queue_only.url}/v1/get-user-credits", headers={"x-api-key": key}).json() == {
        "credits": 1
    }
    status = httpx.get(f"{queue_only.url}/v2/requests/{job_id}", headers={"x-api-key": key})
    assert status.status_code == 422 and status.json()["status"] == "FAILED"


def test_queued_jobs_run_after_a_restart(make_server):
    with make_server("restart", workers=0) as first:
        key = first.new_key(credits=1)
        ids = [
            httpx.post(
                f"{first.url}/v2/veo-2", json={"prompt": f"job {i}"}, headers={"x-api-key": key}
            ).json()["request_id"]
            for i in range(3)
        ]
    with make_server("restart", same_as=first, workers=1) as second:
        deadline = time.monotonic() + 120
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                status = httpx.get(
                    f"{second.url}/v2/requests/{job_id}/status", headers={"x-api-key": key}
                ).json()["status"]
                assert status != "FAILED"
                if status == "COMPLETED":
                    pending.discard(job_id)
            time.sleep(0.3)
        assert not pending, second.log()
        row, ledger_total, entries = key_row(second, key)
    assert row.balance == ledger_total == billing.to_micro(1 - 3 * 0.05)
    assert sorted(e.kind for e in entries) == ["charge"] * 3 + ["grant"] + ["reserve"] * 3

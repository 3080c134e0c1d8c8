"""The job state machine and its credits, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from sqlalchemy import update

from openveo.core.job import VideoFiles
from openveo.core.loras import LoraUse
from openveo.core.request import GenerationRequest
from openveo.service import billing, keys
from openveo.service.billing import to_micro
from openveo.service.jobs import PREFER_WAIT_S, JobNotFound, Jobs, QueuePolicy
from openveo.store.schema import jobs as jobs_table
from openveo.store.schema import ledger
from tests.helpers import job_result

REQUEST = GenerationRequest(prompt="a red panda", model="tiny-wan2.2", seed=7, image=b"\x89PNG...")
COST = to_micro(0.05)  # tiny-wan2.2: 0.01 credits a second, 5 s


@pytest.fixture()
def setup(database):
    key, _ = keys.create_key(database, "tester", 1.0)
    return Jobs(database, QueuePolicy(lease_s=30, max_attempts=2)), key


def ledger_kinds(jobs: Jobs, job_id: str) -> list[str]:
    with jobs.db.read() as conn:
        rows = conn.execute(ledger.select().where(ledger.c.job_id == job_id).order_by(ledger.c.id))
        return [r.kind for r in rows]


def test_success_is_charged_once(setup):
    jobs, key = setup
    job = jobs.submit(key, REQUEST, protocol="test")
    assert job.status == "queued" and jobs.balance(key.id) == to_micro(0.95)
    claimed = jobs.claim("w1", ["tiny-wan2.2"])
    assert claimed.job.id == job.id and claimed.request == REQUEST  # the image travels to the worker
    assert jobs.heartbeat(job.id, "w1", 2, 4) == "ok"
    assert jobs.get(job.id).progress == 0.5
    assert jobs.complete(job.id, "w1", job_result(VideoFiles("v", 7, thumbnail="t"))) == "succeeded"
    # A retried completion (its first answer lost with the connection) is a no-op; another worker's is lost.
    assert jobs.complete(job.id, "w1", job_result()) == "succeeded"
    assert jobs.complete(job.id, "w2", job_result()) == "lost"
    done = jobs.get(job.id)
    assert done.status == "succeeded" and done.billing == "charged" and done.expires_at > time.time()
    assert done.videos == (VideoFiles("v", 7, thumbnail="t"),)
    assert ledger_kinds(jobs, job.id) == ["reserve", "charge"]
    assert jobs.balance(key.id) == to_micro(0.95)


def test_workers_claim_only_their_models(setup):
    jobs, key = setup
    jobs.submit(key, REQUEST, protocol="test")
    assert jobs.claim("w1", ["tiny-ltx"]) is None
    assert jobs.claim("w2", ["tiny-wan2.2"]) is not None
    assert jobs.claim("w3", ["tiny-wan2.2"]) is None  # already taken


def test_failures_retry_then_fail_and_refund(setup):
    jobs, key = setup
    job = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    assert jobs.fail(job.id, "w1", "out of memory") == "queued"
    jobs.claim("w1", ["tiny-wan2.2"])
    assert jobs.fail(job.id, "w1", "out of memory") == "failed"
    failed = jobs.get(job.id)
    assert failed.status == "failed" and failed.attempts == 2 and "out of memory" in failed.error
    assert ledger_kinds(jobs, job.id) == ["reserve", "refund"]
    assert jobs.balance(key.id) == to_micro(1.0)


def test_a_dead_workers_job_is_requeued_then_given_up(database):
    key, _ = keys.create_key(database, "tester", 1.0)
    jobs = Jobs(database, QueuePolicy(lease_s=0.2, max_attempts=2))
    job = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("dead-1", ["tiny-wan2.2"])
    time.sleep(0.3)
    jobs.recover()
    assert jobs.get(job.id).status == "queued"
    assert jobs.heartbeat(job.id, "dead-1") == "lost"  # the first worker can no longer write
    jobs.claim("dead-2", ["tiny-wan2.2"])
    time.sleep(0.3)
    jobs.recover()
    given_up = jobs.get(job.id)
    assert given_up.status == "failed" and given_up.billing == "refunded"
    assert jobs.complete(job.id, "dead-2", job_result()) == "lost"


def test_cancel_queued_refunds_and_cancel_running_flags(setup):
    jobs, key = setup
    queued = jobs.submit(key, REQUEST, protocol="test")
    canceled = jobs.cancel(queued.id, key.id)
    assert canceled.status == "canceled" and canceled.billing == "refunded"

    running = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    assert jobs.cancel(running.id, key.id).status == "running"
    assert jobs.heartbeat(running.id, "w1", 1, 4) == "cancel"
    assert jobs.canceled(running.id, "w1")
    assert jobs.get(running.id).billing == "refunded"
    assert jobs.balance(key.id) == to_micro(1.0)


def test_release_gives_the_job_back_without_counting_an_attempt(setup):
    jobs, key = setup
    job = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    assert jobs.release(job.id, "w1")
    again = jobs.get(job.id)
    assert again.status == "queued" and again.attempts == 0 and again.billing == "reserved"


def test_other_keys_cannot_see_or_cancel(setup, database):
    jobs, key = setup
    other, _ = keys.create_key(database, "other", 1.0)
    job = jobs.submit(key, REQUEST, protocol="test")
    with pytest.raises(JobNotFound):
        jobs.get(job.id, other.id)
    with pytest.raises(JobNotFound):
        jobs.cancel(job.id, other.id)


def test_idempotent_submit_returns_the_same_job(setup):
    jobs, key = setup
    first = jobs.submit(key, REQUEST, protocol="test", idempotency_key="abc")
    second = jobs.submit(key, REQUEST, protocol="test", idempotency_key="abc")
    assert first.id == second.id and jobs.balance(key.id) == to_micro(0.95)


def test_list_pages_newest_first(setup):
    jobs, key = setup
    ids = [jobs.submit(key, REQUEST, protocol="test").id for _ in range(5)]
    page, more = jobs.page(key.id, limit=3)
    assert [j.id for j in page] == ids[::-1][:3] and more
    rest, more = jobs.page(key.id, limit=3, after=page[-1].id)
    assert [j.id for j in rest] == ids[::-1][3:] and not more
    assert jobs.queue_position(jobs.get(ids[3])) == 3


def test_results_and_stale_queued_jobs_expire(database):
    key, _ = keys.create_key(database, "tester", 1.0)
    jobs = Jobs(database, QueuePolicy(retention_s=0.1, queue_timeout_s=0.1))
    done = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    jobs.complete(done.id, "w1", job_result())
    waiting = jobs.submit(key, REQUEST, protocol="test")
    time.sleep(0.2)
    assert jobs.recover() == [done.id]
    assert jobs.get(done.id).status == "expired" and jobs.get(done.id).billing == "charged"
    assert jobs.get(waiting.id).status == "expired" and jobs.get(waiting.id).billing == "refunded"


def test_delete_hides_the_job_and_cancels_unfinished_work(setup):
    jobs, key = setup
    running = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    deleted = jobs.delete(running.id, key.id)
    assert deleted.status == "canceled" and deleted.billing == "refunded"
    assert jobs.heartbeat(running.id, "w1", 1, 4) == "lost"  # the worker stops and discards its output
    assert jobs.complete(running.id, "w1", job_result()) == "lost"
    with pytest.raises(JobNotFound):
        jobs.get(running.id)
    assert jobs.page(key.id) == ([], False)
    assert jobs.balance(key.id) == to_micro(1.0)


def test_a_cancel_is_never_lost(database):
    """Canceled while running, then the run ends in any way: the job ends canceled and refunded."""
    key, _ = keys.create_key(database, "tester", 1.0)
    jobs = Jobs(database, QueuePolicy(lease_s=0.2, max_attempts=3))
    endings = {
        "after the last step": lambda job_id: jobs.complete(job_id, "w", job_result()),
        "a failed run": lambda job_id: jobs.fail(job_id, "w", "boom"),
        "a dead worker": lambda job_id: (time.sleep(0.3), jobs.recover()),
        "a worker shutting down": lambda job_id: jobs.release(job_id, "w"),
    }
    for ending in endings.values():
        job = jobs.submit(key, REQUEST, protocol="test")
        jobs.claim("w", ["tiny-wan2.2"])
        jobs.cancel(job.id, key.id)
        ending(job.id)
        final = jobs.get(job.id)
        assert (final.status, final.billing) == ("canceled", "refunded"), ending
    assert jobs.balance(key.id) == to_micro(1.0)


def test_recover_cannot_undo_a_completion(database):
    """recover() and complete() racing on PostgreSQL: whichever commits second sees the other's result."""
    from concurrent.futures import ThreadPoolExecutor

    key, _ = keys.create_key(database, "tester", 1.0)
    jobs = Jobs(database, QueuePolicy(lease_s=0.05, max_attempts=1))
    for _ in range(10):
        job = jobs.submit(key, REQUEST, protocol="test")
        jobs.claim("w", ["tiny-wan2.2"])
        time.sleep(0.06)
        with ThreadPoolExecutor(2) as pool:
            done = pool.submit(jobs.complete, job.id, "w", job_result())
            pool.submit(jobs.recover).result()
            outcome = done.result()
        final = jobs.get(job.id)
        expected = ("succeeded", "charged") if outcome == "succeeded" else ("failed", "refunded")
        assert (final.status, final.billing) == expected
    with jobs.db.read() as conn:
        assert billing.balance(conn, key.id) == billing.ledger_sum(conn, key.id)


def _waiter_gone(jobs: Jobs, job_id: str) -> None:
    """As if the call waiting for the job stopped renewing its lease a while ago."""
    with jobs.db.write() as conn:
        conn.execute(update(jobs_table).where(jobs_table.c.id == job_id).values(waiter_until=time.time() - 1))


def test_a_job_whose_synchronous_caller_is_gone_is_canceled_and_refunded(setup):
    """Segmind's /v1 answers only with the video: if the server dies mid-call, nobody can receive
    the job, so it must not be made and charged."""
    jobs, key = setup
    orphan = jobs.submit(key, REQUEST, protocol="segmind-v1", waited=True)
    waited = jobs.submit(key, REQUEST, protocol="segmind-v1", waited=True)
    async_job = jobs.submit(key, REQUEST, protocol="segmind-v2")
    _waiter_gone(jobs, orphan.id)
    _waiter_gone(jobs, waited.id)
    jobs.hold(waited.id)  # its caller is still there: renewed
    jobs.recover()
    gone = jobs.get(orphan.id)
    assert gone.status == "canceled" and gone.billing == "refunded" and "not charged" in gone.error
    assert jobs.get(waited.id).status == "queued" and jobs.get(async_job.id).status == "queued"
    assert jobs.balance(key.id) == to_micro(1.0) - 2 * COST


def test_a_running_job_whose_caller_is_gone_is_stopped_by_its_worker(setup):
    jobs, key = setup
    job = jobs.submit(key, REQUEST, protocol="segmind-v1", waited=True)
    assert jobs.claim("w1", ["tiny-wan2.2"]).job.id == job.id
    _waiter_gone(jobs, job.id)
    jobs.recover()
    assert jobs.heartbeat(job.id, "w1", 1, 4) == "cancel"  # what the worker hears on its next step
    assert jobs.canceled(job.id, "w1")
    assert jobs.get(job.id).billing == "refunded" and jobs.balance(key.id) == to_micro(1.0)


def test_a_worker_holding_an_adapter_takes_its_job_first_but_not_an_old_one_forever(setup):
    jobs, key = setup
    plain = jobs.submit(key, REQUEST, protocol="test")
    styled = replace(REQUEST, loras=(LoraUse("style", "a" * 64),))
    with_style = jobs.submit(key, styled, protocol="test")
    two = (LoraUse("style", "a" * 64), LoraUse("motion", "b" * 64))
    mixed = jobs.submit(key, replace(REQUEST, loras=two), protocol="test")
    # A worker holding another adapter needs a load for every styled job: the plain one (oldest) first.
    assert jobs.claim("w1", ["tiny-wan2.2"], held={"c" * 64}).job.id == plain.id
    # One holding "style" takes its job over the mixed one, which needs one load more.
    assert jobs.claim("w2", ["tiny-wan2.2"], held={"a" * 64}).job.id == with_style.id
    assert jobs.claim("w3", ["tiny-wan2.2"], held={"a" * 64}).job.id == mixed.id


def test_the_oldest_job_waits_no_longer_than_the_preference_window(setup, monkeypatch):
    jobs, key = setup
    old = jobs.submit(key, replace(REQUEST, loras=(LoraUse("style", "a" * 64),)), protocol="test")
    later = time.time() + PREFER_WAIT_S + 1
    monkeypatch.setattr(time, "time", lambda: later)
    jobs.submit(key, REQUEST, protocol="test")  # needs no load, but came too late to jump the queue
    assert jobs.claim("w1", ["tiny-wan2.2"], held={"c" * 64}).job.id == old.id

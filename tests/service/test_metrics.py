"""The deployment's numbers behind /metrics, counted from the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from openveo.core.request import GenerationRequest
from openveo.service import keys, refusals
from openveo.service.billing import to_micro
from openveo.service.jobs import Jobs, QueuePolicy
from openveo.service.metrics import LATENCY_BUCKETS, STEP_BUCKETS, deployment_stats
from openveo.service.workers import WorkerRegistry
from tests.helpers import job_result

WAN = GenerationRequest(prompt="a harbour", model="tiny-wan2.2", seed=1)
LTX = GenerationRequest(prompt="a harbour", model="tiny-ltx", seed=1)


def test_counts_follow_the_jobs(database):
    key, _ = keys.create_key(database, "metrics", 10.0)
    jobs = Jobs(database, QueuePolicy(max_attempts=1))
    assert deployment_stats(database).finished == {}

    done = [jobs.submit(key, WAN, protocol="test") for _ in range(2)]
    for job, per_step in zip(done, (0.03, 0.3), strict=True):
        jobs.claim("w1", ["tiny-wan2.2"])
        assert jobs.complete(job.id, "w1", job_result(seconds_per_step=per_step)) == "succeeded"
    failing = jobs.submit(key, WAN, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    jobs.fail(failing.id, "w1", "boom")
    canceled = jobs.submit(key, LTX, protocol="test")
    jobs.cancel(canceled.id)
    jobs.submit(key, LTX, protocol="test")  # waits
    jobs.submit(key, WAN, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])  # runs
    WorkerRegistry(database).register("w1", "host", 1, ["tiny-wan2.2"], "cpu")
    WorkerRegistry(database).beat("w1", "busy")

    stats = deployment_stats(database)
    assert stats.finished == {
        ("tiny-wan2.2", "succeeded"): 2,
        ("tiny-wan2.2", "failed"): 1,
        ("tiny-ltx", "canceled"): 1,
    }
    assert stats.queued == {"tiny-ltx": 1} and stats.running == {"tiny-wan2.2": 1}
    assert stats.live_workers == {"tiny-wan2.2": 1}
    assert stats.charged_micro == to_micro(0.10)  # only the two that succeeded

    cumulative, count, total = stats.step.by_model["tiny-wan2.2"]
    assert count == 2 and abs(total - 0.33) < 1e-9
    assert cumulative == [sum(v <= bound for v in (0.03, 0.3)) for bound in STEP_BUCKETS]
    latency, count, _ = stats.latency.by_model["tiny-wan2.2"]
    assert count == 2 and latency == [2] * len(LATENCY_BUCKETS)  # done within a second


def test_refusals_are_kept_listed_and_counted(database):
    assert deployment_stats(database).refused == {} and refusals.recent(database) == []
    for protocol, source, key_id in [
        ("openai", "terms", 1),
        ("openai", "terms", 2),
        ("google", "moderation", 1),
    ]:
        refusals.record(
            database,
            key_id=key_id,
            protocol=protocol,
            model="tiny-wan2.2",
            source=source,
            reason="it contains the blocked term 'x'",
            prompt="x" * (refusals.PROMPT_CHARS + 50),
        )
    assert deployment_stats(database).refused == {("openai", "terms"): 2, ("google", "moderation"): 1}
    newest = refusals.recent(database)
    assert [r.protocol for r in newest] == ["google", "openai", "openai"]  # newest first
    assert len(newest[0].prompt) == refusals.PROMPT_CHARS  # a long prompt is kept only in part
    assert [r.key_id for r in refusals.recent(database, key_id=2)] == [2]
    assert len(refusals.recent(database, limit=1)) == 1


def test_a_refusal_the_database_cannot_take_is_reported_not_raised(tmp_path, caplog):
    from openveo.store.db import Database

    unreachable = Database(f"sqlite:///{tmp_path / 'no-such-dir' / 'openveo.db'}")  # cannot be opened
    recorded = refusals.record(
        unreachable, key_id=1, protocol="openai", model="m", source="terms", reason="r", prompt="p"
    )
    assert recorded is False and "refusal not recorded (database)" in caplog.text
    unreachable.dispose()

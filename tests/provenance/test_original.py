"""A copy that lost its manifest gets the manifest of its job's stored original, and only while
that job's result is kept: real database (SQLite and PostgreSQL), real files, real signed MP4s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openveo.core.job import VideoFiles
from openveo.core.request import GenerationRequest
from openveo.engine.video import write_mp4
from openveo.provenance import identity
from openveo.provenance.manifest import load_credentials, sign_mp4
from openveo.service import keys
from openveo.service.jobs import Jobs, QueuePolicy
from openveo.service.provenance import stored_original
from openveo.store.blobs import LocalBlobs, StorageUnavailable
from tests.helpers import job_result

REQUEST = GenerationRequest(prompt="a harbour", model="tiny-wan2.2", seed=1)
SERVER = 0xBEEF


class UnreachableStore(LocalBlobs):
    """An S3 outage cannot be made here on demand: the one stand-in of this file (a remote store has
    no local path; its reads fail)."""

    def local_path(self, key: str) -> Path | None:
        return None

    def read_bytes(self, key: str) -> bytes:
        raise StorageUnavailable("s3://bucket: connection refused")


@pytest.fixture
def world(database, tmp_path):
    key, _ = keys.create_key(database, "originals", 10.0)
    blobs = LocalBlobs(tmp_path / "results")
    credentials = load_credentials(tmp_path / "c2pa")
    frames = np.random.default_rng(0).integers(0, 255, (9, 64, 96, 3), dtype=np.uint8)

    def finished(jobs: Jobs) -> str:
        job = jobs.submit(key, REQUEST, protocol="test")
        jobs.claim("w1", ["tiny-wan2.2"])
        video = write_mp4(frames, tmp_path / f"{job.id}.mp4", 8)
        payload = identity.pack(SERVER, job.id)
        sign_mp4(
            video, credentials, model=REQUEST.model, seed=1, job_id=job.id, server="beef", watermark=payload
        )
        blobs.put(f"jobs/{job.id}/video-0.mp4", video)
        stored = VideoFiles(f"jobs/{job.id}/video-0.mp4", seed=1)
        assert jobs.complete(job.id, "w1", job_result(stored)) == "succeeded"
        return job.id

    return key, blobs, credentials, finished


def test_only_a_kept_result_gives_its_manifest(database, world, tmp_path):
    key, blobs, credentials, finished = world
    jobs = Jobs(database)
    find = stored_original(jobs, blobs)

    kept = finished(jobs)
    anchors = credentials.own_root_pem
    original = find(kept[:12], anchors)
    assert original.trusted and original.generation["job_id"] == kept
    assert original.soft_binding == f"{identity.pack(SERVER, kept):016x}"

    deleted = finished(jobs)
    jobs.delete(deleted, key.id)  # its files are still there: the job's state alone decides
    expired = finished(Jobs(database, QueuePolicy(retention_s=-1.0)))
    removed = finished(jobs)
    blobs.delete_prefix(f"jobs/{removed}")
    running = jobs.submit(key, REQUEST, protocol="test")
    jobs.claim("w1", ["tiny-wan2.2"])
    for gone in (deleted, expired, removed, running.id, "0123456789ab"):
        assert find(gone[:12], anchors) is None, gone

    outage = stored_original(jobs, UnreachableStore(tmp_path / "results"))
    assert outage(kept[:12], anchors) is None  # a failing store costs the recovery, not the verification

"""Provenance as the deployment runs it: the stamp its workers put on every video, and the verifier
that reads a video back against the deployment's jobs and result store. The algorithms live in
provenance/; this module feeds them the deployment's secret, its published C2PA roots and its jobs."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openveo.config import Settings
from openveo.provenance import identity
from openveo.provenance.manifest import ManifestReport, load_credentials, read_manifest
from openveo.provenance.stamp import Stamp
from openveo.provenance.verify import Verifier
from openveo.service import anchors
from openveo.service.jobs import Jobs
from openveo.store.blobs import BlobMissing, Blobs, StorageUnavailable
from openveo.store.db import Database

log = logging.getLogger(__name__)


def open_stamp(settings: Settings, db: Database, secret: bytes) -> Stamp:
    """From the settings and the deployment's secret (see service/links.py); a signing root made
    here is published in the database, so every verifier of the deployment trusts it."""
    credentials = None
    if settings.c2pa:
        credentials = load_credentials(settings.data_dir, settings.c2pa_cert, settings.c2pa_key)
        if credentials.own_root_pem is not None:
            anchors.publish(db, credentials.own_root_pem)
    return Stamp(
        watermark_key=identity.watermark_key(secret) if settings.watermark else None,
        server=identity.server_fingerprint(secret),
        credentials=credentials,
    )


def open_verifier(
    settings: Settings,
    db: Database,
    secret: bytes,
    find_job: Callable[[str], Any] | None = None,
    find_original: Callable[[str, bytes], ManifestReport | None] | None = None,
) -> Verifier:
    """The deployment's verifier: its watermark key and fingerprint, and every C2PA root it signs with."""
    return Verifier(
        key=identity.watermark_key(secret),
        server=identity.server_fingerprint(secret),
        anchors=anchors.trust_anchors(db, settings.c2pa_trust_anchors),
        find_job=find_job,
        find_original=find_original,
    )


def stored_original(jobs: Jobs, blobs: Blobs) -> Callable[[str, bytes], ManifestReport | None]:
    """(job-id prefix, trust anchors) -> the manifest of the job's first stored video (a job's videos
    share one watermark payload), while the job has succeeded and its result is kept; None otherwise,
    or when the store fails. A file on local disk is read where it lies."""

    def find(prefix: str, trusted: bytes) -> ManifestReport | None:
        job = jobs.by_prefix(prefix, retained=True)
        if job is None or not job.videos:
            return None
        try:
            with _stored_file(blobs, job.videos[0].video) as path:
                return read_manifest(path, trusted)
        except BlobMissing:  # removed since (retention cleanup runs on its own clock)
            return None
        except StorageUnavailable as exc:
            log.warning("original of job %s not read: %s", job.id, exc)
            return None

    return find


@contextmanager
def _stored_file(blobs: Blobs, key: str) -> Iterator[Path]:
    """The blob as a file: its own path on local disk, else a downloaded copy (S3)."""
    local = blobs.local_path(key)
    if local is not None:
        if not local.is_file():
            raise BlobMissing(key)
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="openveo-original-") as folder:
        path = Path(folder) / "original.mp4"
        path.write_bytes(blobs.read_bytes(key))
        yield path

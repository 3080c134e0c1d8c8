"""Is this video one openveo made? Reads a file's C2PA manifest and looks for the watermark; shared
by `openveo verify` and `POST /v1/verify`. Torch-free: the API process runs it."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from openveo.provenance import identity
from openveo.provenance.manifest import ManifestReport, read_manifest
from openveo.provenance.watermark import MAX_FRAMES, detect
from openveo.service import anchors
from openveo.service.jobs import Jobs
from openveo.store.blobs import BlobMissing, Blobs, StorageUnavailable
from openveo.store.db import Database

log = logging.getLogger(__name__)


class NotAVideo(ValueError):
    """The file has no decodable video stream."""


@dataclass(frozen=True)
class Verifier:
    key: bytes  # the deployment's watermark key
    server: int  # the deployment's fingerprint
    anchors: bytes  # C2PA roots to trust (PEM)
    find_job: Callable[[str], Any] | None = None  # job-id prefix -> job (or None)
    # (job-id prefix, trust anchors) -> the manifest of its stored original; asked only for a job
    # `find_job` gave, so only for what the asker may see
    find_original: Callable[[str, bytes], ManifestReport | None] | None = None

    def verify(self, path: Path) -> dict[str, Any]:
        frames = read_frames(path)
        manifest = read_manifest(path, self.anchors)
        detection = detect(frames, self.key)
        recovered = None
        watermark: dict[str, Any] = {
            "found": detection.found,
            "confidence": round(detection.bit_confidence, 4),
            "p_value": detection.p_value,
            "payload": None,
        }
        if detection.found and detection.payload is not None:
            origin = identity.Origin.unpack(detection.payload)
            watermark.update(
                payload=f"{detection.payload:016x}",
                server=f"{origin.server:04x}",
                this_deployment=origin.server == self.server,
                job_id_prefix=origin.job_prefix,
            )
            job = self.find_job(origin.job_prefix) if self.find_job and origin.server == self.server else None
            watermark["job"] = job
            own_manifest = manifest.valid and manifest.generation.get("service") == "openveo"
            if job is not None and not own_manifest and self.find_original is not None:
                original = self.find_original(origin.job_prefix, self.anchors)
                if original is not None:
                    binds = original.soft_binding == watermark["payload"]
                    recovered = {**original.as_dict(), "binds_this_video": binds}
        return {
            "file": path.name,
            "frames_checked": len(frames),
            "manifest": manifest.as_dict(),
            "watermark": watermark,
            "recovered_manifest": recovered,
            "made_by_openveo": (manifest.valid and manifest.ai_generated) or detection.found,
        }


def read_frames(path: Path, limit: int = MAX_FRAMES) -> np.ndarray:
    """Up to `limit` frames spread over the whole video, as RGB. Streams often do not say how many
    frames they hold, so the kept frames thin out (every 2nd, 4th, ...) as decoding goes on."""
    kept: list[np.ndarray] = []
    stride = 1
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise NotAVideo(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index % stride == 0:
                    kept.append(frame.to_ndarray(format="rgb24"))
                    if len(kept) == 2 * limit:
                        kept, stride = kept[::2], stride * 2
    except av.error.FFmpegError as exc:
        raise NotAVideo(f"{path.name} is not a readable video: {exc}") from None
    if not kept:
        raise NotAVideo(f"{path.name} holds no video frames")
    picks = np.linspace(0, len(kept) - 1, min(limit, len(kept))).round().astype(int)
    return np.stack([kept[i] for i in picks])


def stored_original(jobs: Jobs, blobs: Blobs) -> Callable[[str, bytes], ManifestReport | None]:
    """(job-id prefix, trust anchors) -> the manifest of the job's first stored video (a job's videos
    share one watermark payload), while the job has succeeded and its result is kept; None otherwise,
    or when the store fails. A file on local disk is read where it lies."""

    def find(prefix: str, anchors: bytes) -> ManifestReport | None:
        job = jobs.by_prefix(prefix, retained=True)
        videos = (job.result or {}).get("videos") if job else None
        if not videos:
            return None
        try:
            with _stored_file(blobs, videos[0]["video"]) as path:
                return read_manifest(path, anchors)
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


def open_verifier(
    settings: Any,
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

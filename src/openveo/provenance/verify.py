"""Is this video one openveo made? Reads a file's C2PA manifest and looks for the watermark. The
deployment's jobs are looked up through callbacks (service/provenance.py gives them), so this stays a
library. Torch-free: the API process runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from openveo.provenance import identity
from openveo.provenance.manifest import ManifestReport, read_manifest
from openveo.provenance.watermark import MAX_FRAMES, detect


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
    except av.error.FFmpegError as exc:  # its text names the file's full path: keep only the reason
        raise NotAVideo(f"{path.name} is not a readable video: {exc.strerror or 'unknown format'}") from None
    if not kept:
        raise NotAVideo(f"{path.name} holds no video frames")
    picks = np.linspace(0, len(kept) - 1, min(limit, len(kept))).round().astype(int)
    return np.stack([kept[i] for i in picks])

"""The delivery step, shared by the worker and `openveo generate`: a generation's frames become the
files a client gets.

    frames (watermarked on the device by the engine) → MP4 → signed C2PA manifest → thumbnail,
    spritesheet → result store (the worker) or the user's paths (the CLI)

Every file is written whole (temp file, then rename), so nobody ever reads half a video.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from openveo.core.job import JobResult, Provenance, VideoFiles
from openveo.engine.engine import Generation
from openveo.engine.video import video_metadata, write_mp4, write_spritesheet, write_thumbnail
from openveo.provenance.identity import Watermark
from openveo.provenance.stamp import Stamp
from openveo.store.blobs import Blobs


@dataclass(frozen=True)
class VideoPaths:
    """Where one video's files are written; a file without a path is not made."""

    video: Path
    thumbnail: Path | None = None
    spritesheet: Path | None = None


# An extension's source frames were compressed once already: a finer encode keeps their second
# generation loss small (the tiny models' noise-like frames: 40 dB at CRF 18, 44 dB at 12).
FINER_FOR_SOURCE_FRAMES = 6


@dataclass(frozen=True)
class Delivery:
    """How videos are delivered: the x264 quality, and the marks every video carries (a `Stamp`, or
    None with provenance off)."""

    crf: int
    stamp: Stamp | None

    def watermark(self, job_id: str) -> Watermark | None:
        """What the engine embeds in the frames of this job's videos."""
        return self.stamp.watermark(job_id) if self.stamp else None

    def provenance(self, job_id: str) -> Provenance:
        mark = self.watermark(job_id)
        return Provenance(
            watermark=f"{mark.payload:016x}" if mark else None,
            signed=self.stamp is not None and self.stamp.credentials is not None,
        )

    def write(self, generation: Generation, job_id: str, paths: Sequence[VideoPaths]) -> float:
        """Write each video's files; returns the seconds it took (the `video_encode` stage)."""
        started = time.perf_counter()
        model = generation.preset.name
        loras = [dataclasses.asdict(use) for use in generation.loras]
        crf = max(0, self.crf - FINER_FOR_SOURCE_FRAMES) if generation.source_frames else self.crf
        for frames, seed, where in zip(generation.videos, generation.seeds, paths, strict=True):
            write_mp4(frames, where.video, generation.fps, crf=crf, metadata=video_metadata(model, seed))
            if self.stamp is not None:
                self.stamp.sign(where.video, model=model, seed=seed, job_id=job_id, loras=loras)
            if where.thumbnail is not None:
                write_thumbnail(frames, where.thumbnail)
            if where.spritesheet is not None:
                write_spritesheet(frames, where.spritesheet)
        return time.perf_counter() - started


def staged_paths(staging: Path, count: int) -> list[VideoPaths]:
    """A worker's files for `count` videos, in its staging folder before they are stored."""
    return [
        VideoPaths(
            staging / f"video-{index}.mp4",
            staging / f"thumbnail-{index}.jpg",
            staging / f"spritesheet-{index}.jpg",
        )
        for index in range(count)
    ]


def store(blobs: Blobs, folder: str, paths: VideoPaths, seed: int) -> VideoFiles:
    """Move (or upload) one video's finished files into the result store, under `folder`."""

    def put(path: Path) -> str:
        key = f"{folder}/{path.name}"
        blobs.put(key, path)
        return key

    return VideoFiles(
        video=put(paths.video),
        seed=seed,
        thumbnail=put(paths.thumbnail) if paths.thumbnail else None,
        spritesheet=put(paths.spritesheet) if paths.spritesheet else None,
    )


def job_result(
    generation: Generation, videos: Sequence[VideoFiles], encode_s: float, provenance: Provenance
) -> JobResult:
    """What the worker records for a delivered job."""
    timings = {**generation.timings, "video_encode": encode_s}
    steps_run = max(1, generation.steps * len(generation.videos))
    return JobResult(
        videos=tuple(videos),
        width=generation.width,
        height=generation.height,
        fps=generation.fps,
        num_frames=generation.num_frames,
        steps=generation.steps,
        timings={stage: round(seconds, 4) for stage, seconds in timings.items()},
        seconds_per_step=generation.timings.get("denoising", 0.0) / steps_run,
        provenance=provenance,
    )

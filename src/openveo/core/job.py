"""The job vocabulary every layer shares: the one state machine, the typed outcomes of its steps, what
a finished job delivered, and where its files live.

    queued → running → succeeded | failed | canceled      (+ expired when retention ends)

A job's request, origin and result are stored as JSON and validated both ways (pydantic), so a
protocol reads `job.result.videos[0].seed`, never `job.result["videos"][0]["seed"]`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from pydantic import TypeAdapter

from openveo.core.request import GenerationRequest
from openveo.core.text import load_stored


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def done(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})


class Billing(StrEnum):
    """A job's reserved cost, which moves out of `reserved` exactly once."""

    RESERVED = "reserved"
    CHARGED = "charged"
    REFUNDED = "refunded"


class Settlement(StrEnum):
    """How a job's reservation is closed."""

    CHARGE = "charge"
    REFUND = "refund"


class LeaseState(StrEnum):
    """What a worker learns when it renews its lease on a running job."""

    OK = "ok"
    CANCEL_REQUESTED = "cancel"  # the client asked to stop: stop and report it canceled
    LOST = "lost"  # the lease was taken away: stop and write nothing


class Completion(StrEnum):
    """What became of a job a worker finished."""

    SUCCEEDED = "succeeded"
    CANCELED = "canceled"  # the client canceled after the last step: refunded, not delivered
    LOST = "lost"  # another worker owns the job now: discard the files


FileKind = Literal["video", "thumbnail", "spritesheet"]


@dataclass(frozen=True)
class VideoFiles:
    """One delivered video: the result-store keys of its files and the seed that made it."""

    video: str
    seed: int
    thumbnail: str | None = None
    spritesheet: str | None = None  # results stored before spritesheets existed have none

    def file(self, kind: FileKind) -> str | None:
        return {"video": self.video, "thumbnail": self.thumbnail, "spritesheet": self.spritesheet}[kind]


@dataclass(frozen=True)
class Provenance:
    """What marks the videos carry (docs/provenance.md)."""

    watermark: str | None = None  # the invisible watermark's payload (hex), when one was embedded
    signed: bool = False  # a C2PA manifest is signed into every MP4


@dataclass(frozen=True)
class JobResult:
    """What a worker delivered: the videos, how they were made, and how long each stage took."""

    videos: tuple[VideoFiles, ...]
    width: int
    height: int
    fps: int
    num_frames: int
    steps: int
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds per stage
    seconds_per_step: float | None = None  # mean denoising step, for the metrics
    provenance: Provenance = field(default_factory=Provenance)

    def to_json(self) -> str:
        return _RESULT.dump_json(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> JobResult:
        return _RESULT.validate_python(load_stored(text))


@dataclass(frozen=True)
class JobOrigin:
    """How a job came in, kept so its protocol can answer about it later in its own terms. The core
    carries it and never reads it."""

    base_url: str = ""  # where the client reached this server: absolute links in webhooks
    requested_model: str | None = None  # the model name the client used (an alias such as sora-2)
    route: str | None = None  # the resource path the client addressed (Google names operations by it)
    remix_of: str | None = None  # the job this one remakes with a new prompt
    extends: str | None = None  # the job whose video this one extends
    people: str | None = None  # the personGeneration it asked for (a remix asks for it again)

    def to_json(self) -> str:
        return _ORIGIN.dump_json(self, exclude_defaults=True).decode()

    @classmethod
    def from_json(cls, text: str | bytes | None) -> JobOrigin:
        return _ORIGIN.validate_python(load_stored(text)) if text else cls()


@dataclass(frozen=True)
class Job:
    """A job as every layer sees it. The input image stays in the database (`has_image`); only the
    worker that claims the job reads it."""

    id: str
    key_id: int
    protocol: str  # which API accepted it; its status words are a mapping of `status`
    model: str  # the preset that makes it
    request: GenerationRequest  # without the image
    has_image: bool
    origin: JobOrigin
    status: JobStatus
    cost: int  # micro-credits
    billing: Billing
    attempts: int
    progress_step: int
    progress_total: int
    cancel_requested: bool
    error: str | None
    result: JobResult | None
    webhook_url: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    updated_at: float

    @property
    def done(self) -> bool:
        return self.status.done

    @property
    def progress(self) -> float:
        """0.0 – 1.0 from the denoising steps (1.0 once succeeded)."""
        if self.status == JobStatus.SUCCEEDED:
            return 1.0
        return self.progress_step / self.progress_total if self.progress_total else 0.0

    @property
    def videos(self) -> tuple[VideoFiles, ...]:
        """The delivered videos; none until the job has succeeded."""
        return self.result.videos if self.result else ()

    @property
    def generation_time(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def new_job_id() -> str:
    """Random lowercase hex: Google's SDK needs [a-z0-9] ids, and a watermark carries 48 bits of one."""
    return secrets.token_hex(16)


def job_folder(job_id: str) -> str:
    """Where a job's files live in the result store; removing it removes every attempt's files."""
    return f"jobs/{job_id}"


def attempt_folder(job_id: str, attempt: int) -> str:
    """One run's files: a retried job never mixes its files with an earlier run's."""
    return f"{job_folder(job_id)}/attempt-{attempt}"


_RESULT: TypeAdapter[JobResult] = TypeAdapter(JobResult)
_ORIGIN: TypeAdapter[JobOrigin] = TypeAdapter(JobOrigin)

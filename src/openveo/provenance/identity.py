"""Who made a video, in 64 bits: the deployment (16 bits) and the job (48 bits of its id). Both the
watermark key and the deployment's fingerprint derive from the deployment secret in the database, so
every worker marks alike and every API server (or `openveo verify` on the same database) reads alike."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

JOB_BITS = 48
SERVER_BITS = 16


def watermark_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"openveo watermark key v1", hashlib.sha256).digest()


def server_fingerprint(secret: bytes) -> int:
    digest = hmac.new(secret, b"openveo server id v1", hashlib.sha256).digest()
    return int.from_bytes(digest[:2], "big")


def pack(server: int, job_id: str) -> int:
    """The payload for one job's videos: job ids are random hex, so 48 of their bits name one job
    among billions."""
    return (server << JOB_BITS) | int(job_id[: JOB_BITS // 4], 16)


@dataclass(frozen=True)
class Watermark:
    """The keyed payload every frame of one job's videos carries (the engine embeds it)."""

    key: bytes
    payload: int


@dataclass(frozen=True)
class Origin:
    server: int  # the deployment's 16-bit fingerprint
    job_prefix: str  # the first 12 hex digits of the job id

    @classmethod
    def unpack(cls, payload: int) -> Origin:
        return cls(payload >> JOB_BITS, format(payload & ((1 << JOB_BITS) - 1), f"0{JOB_BITS // 4}x"))

"""What every video openveo makes carries: the watermark (key and payload) and the signed C2PA
manifest. Built once per process (service/provenance.py), used by the delivery step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openveo.provenance import identity
from openveo.provenance.manifest import Credentials, sign_mp4


@dataclass(frozen=True)
class Stamp:
    watermark_key: bytes | None  # None: OPENVEO_WATERMARK=false
    server: int  # this deployment's fingerprint (16 bits)
    credentials: Credentials | None  # None: OPENVEO_C2PA=false

    def watermark(self, job_id: str) -> identity.Watermark | None:
        """What the engine embeds in this job's frames (None when the watermark is off)."""
        if self.watermark_key is None:
            return None
        return identity.Watermark(self.watermark_key, identity.pack(self.server, job_id))

    def sign(
        self, path: Path, *, model: str, seed: int, job_id: str | None, loras: list[dict] | None = None
    ) -> None:
        if self.credentials is not None:
            mark = self.watermark(job_id) if job_id else None
            sign_mp4(
                path,
                self.credentials,
                model=model,
                seed=seed,
                job_id=job_id,
                server=f"{self.server:04x}",
                watermark=mark.payload if mark else None,
                loras=loras,
            )

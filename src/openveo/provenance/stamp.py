"""What every video openveo makes carries, decided once per process from the settings: the watermark
(key and payload) and the signed C2PA manifest. The worker and `openveo generate` share this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openveo.provenance import identity
from openveo.provenance.manifest import Credentials, load_credentials, sign_mp4
from openveo.service import anchors
from openveo.store.db import Database


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

    def sign(self, path: Path, *, model: str, seed: int, job_id: str | None) -> None:
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
            )


def open_stamp(settings: Any, db: Database, secret: bytes) -> Stamp:
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

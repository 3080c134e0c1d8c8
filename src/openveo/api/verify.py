"""`POST /v1/verify`: was this video made by this deployment? The same report as `openveo verify`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from openveo.api import schemas
from openveo.api.bodies import FORM_TYPES, read_bytes, read_fields
from openveo.api.errors import ApiError
from openveo.api.jobs import MISSING_KEY
from openveo.api.state import state_of
from openveo.provenance.verify import NotAVideo
from openveo.service.provenance import open_verifier, stored_original

router = APIRouter()


@router.post("/v1/verify", openapi_extra=schemas.VERIFY)
async def verify(request: Request) -> dict[str, Any]:
    """The body is the video itself (video/* or application/octet-stream), or a multipart form with
    it as `file`. A watermarked job is named only to the key that made it; anyone may learn that
    this deployment made a video."""
    state = state_of(request)
    key = await state.key(request, bearer=True, missing=MISSING_KEY)
    limit = state.settings.max_body_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in FORM_TYPES:
        data = (await read_fields(request, limit)).get("file")
        if not isinstance(data, bytes):
            raise ApiError(422, "send the video as the multipart file field `file`", field="file")
    elif kind.startswith("video/") or kind == "application/octet-stream":
        data = await read_bytes(request, limit)
    else:
        raise ApiError(
            406,
            f"unsupported Content-Type {kind!r}; send the video (video/mp4 or application/octet-stream) "
            "or multipart/form-data with a `file`",
            code="unsupported_media",
        )
    if not data:
        raise ApiError(422, "the video is empty", field="file")
    runtime = state.runtime

    def own_job(prefix: str) -> dict[str, Any] | None:
        job = runtime.jobs.by_prefix(prefix)
        return (
            {"id": job.id, "model": job.model, "created_at": job.created_at}
            if job and job.key_id == key.id
            else None
        )

    def check() -> dict[str, Any]:
        original = stored_original(runtime.jobs, runtime.blobs)  # asked only for own_job's jobs
        verifier = open_verifier(state.settings, runtime.db, runtime.secret, own_job, original)
        with tempfile.TemporaryDirectory(prefix="openveo-verify-") as folder:
            path = Path(folder) / "upload.mp4"
            path.write_bytes(data)
            return verifier.verify(path)

    try:
        report = await run_in_threadpool(check)
    except NotAVideo as exc:
        raise ApiError(422, str(exc).replace("upload.mp4", "the upload"), field="file") from None
    report.pop("file")
    return report

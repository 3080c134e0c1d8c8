"""Result files behind signed, expiring links, with HTTP Range support (video players seek with it)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from openveo.api.errors import ApiError
from openveo.api.state import state_of

router = APIRouter()

MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png"}


@router.get("/files/{blob_key:path}")
def download(blob_key: str, request: Request, expires: str = "", signature: str = "") -> FileResponse:
    state = state_of(request)
    if not state.runtime.signer.valid(blob_key, expires, signature):
        raise ApiError(403, "this link is invalid or has expired; ask the API for a fresh one")
    try:
        path = state.runtime.blobs.path(blob_key)
    except ValueError:
        raise ApiError(404, "no such file") from None
    if not path.is_file():
        raise ApiError(404, "this result is no longer stored (its retention has ended)")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))

"""Result files behind signed, expiring links, with HTTP Range support (video players seek with it).
With S3 storage the links are presigned by the store itself; a link signed here is then answered with
a redirect to a fresh presigned one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from openveo.api.errors import ApiError
from openveo.api.state import state_of
from openveo.store.blobs import content_type

router = APIRouter()


@router.get("/files/{blob_key:path}")
@router.head("/files/{blob_key:path}", include_in_schema=False)  # players probe with HEAD
def download(blob_key: str, request: Request, expires: str = "", signature: str = "") -> Response:
    state = state_of(request)
    if not state.runtime.signer.valid(blob_key, expires, signature):
        raise ApiError(403, "this link is invalid or has expired; ask the API for a fresh one")
    blobs = state.runtime.blobs
    try:
        path = blobs.local_path(blob_key)
    except ValueError:
        raise ApiError(404, "no such file") from None
    if path is None:
        presigned = blobs.presigned_url(blob_key, float(expires))
        if presigned is None:  # a store with neither local files nor presigned links: nothing to serve
            raise ApiError(404, "no such file")
        return RedirectResponse(presigned, status_code=307)
    if not path.is_file():
        raise ApiError(404, "this result is no longer stored (its retention has ended)")
    return FileResponse(path, media_type=content_type(blob_key))

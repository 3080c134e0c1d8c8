"""Request bodies as plain dicts: JSON, multipart/form-data or urlencoded, all size-limited, and image
inputs (multipart file, data URL, bare base64 or an http(s) URL) turned into bytes."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import httpx
from fastapi import Request
from starlette.datastructures import UploadFile

from openveo.api.errors import ApiError

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def read_fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body's fields; uploaded files become bytes. Unsupported content types answer 406."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/json", "") or kind.endswith("+json"):
        raw = await read_bytes(request, max_bytes)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(422, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(422, "the JSON body must be an object of fields")
        return body
    if kind in FORM_TYPES:
        await read_bytes(request, max_bytes)  # enforce the limit before parsing (it is cached)
        form = await request.form(max_part_size=max_bytes)
        fields: dict[str, Any] = {}
        for name, value in form.multi_items():
            fields[name] = await value.read() if isinstance(value, UploadFile) else value
        return fields
    raise ApiError(
        406,
        f"unsupported Content-Type {kind!r}; send application/json, multipart/form-data "
        "or application/x-www-form-urlencoded",
        code="unsupported_media",
    )


async def read_bytes(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused early when its declared length is over the limit."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    return await _read_limited(request, max_bytes)


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # let request.form() / request.json() reuse what was read
    return body


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(422, f"the request body is too large: the limit is {max_bytes} bytes")


async def image_bytes(value: Any, *, field: str, max_bytes: int, allow_urls: bool) -> bytes | None:
    """Bytes of an image given as a file, a data URL, base64 or an http(s) URL (fetched, size-limited)."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ApiError(
            422, f"{field} must be an image file, a data URL, base64 or an http(s) URL", field=field
        )
    text = value.strip()
    if text.startswith(("http://", "https://")):
        if not allow_urls:
            raise ApiError(
                422, f"{field}: image URLs are turned off on this server; send the bytes", field=field
            )
        return await _fetch(text, field, max_bytes)
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            422, f"{field} must be an image file, a data URL, base64 or an http(s) URL", field=field
        ) from None


async def _fetch(url: str, field: str, max_bytes: int) -> bytes:
    try:
        async with (
            httpx.AsyncClient(timeout=30, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ApiError(
                    422, f"{field}: fetching {url} answered HTTP {response.status_code}", field=field
                )
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise ApiError(422, f"{field} must be at most {max_bytes} bytes", field=field)
            return bytes(data)
    except httpx.HTTPError as exc:
        raise ApiError(422, f"{field}: could not fetch {url}: {exc}", field=field) from None

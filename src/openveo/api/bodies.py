"""Request bodies as plain dicts: JSON, multipart/form-data or urlencoded, all size-limited, and image
inputs (multipart file, data URL, bare base64 or an http(s) URL) turned into bytes."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from email.message import Message
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from openveo.api.errors import ApiError
from openveo.core.text import text_problem
from openveo.service.outbound import NEUTRAL, Outbound, OutboundFailed

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_DEPTH = 32  # of JSON nesting; the deepest body a protocol defines has 4 levels


async def read_fields(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body's fields; uploaded files become bytes. Every piece of text in it must be storable
    (core/text.py). Unsupported content types answer 406, malformed bodies 400 or 422."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/json", "") or kind.endswith("+json"):
        raw = await read_bytes(request, max_bytes)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw, parse_constant=_not_a_number, parse_float=_finite)
        except RecursionError:
            raise ApiError(422, f"the JSON body is nested more than {MAX_DEPTH} levels deep") from None
        except (ValueError, UnicodeDecodeError):
            raise ApiError(422, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(422, "the JSON body must be an object of fields")
        _check_text(body, "", 0)
        return body
    if kind in FORM_TYPES:
        raw = await read_bytes(request, max_bytes)  # enforce the limit before parsing (it is cached)
        if kind == "multipart/form-data":
            _check_multipart(request.headers.get("content-type", ""), raw)
        try:
            form = await request.form(max_part_size=max_bytes)
        except HTTPException as exc:  # Starlette's word for a body its parser cannot read
            raise ApiError(400, f"the form body is malformed: {exc.detail}", code="invalid") from None
        items = [
            (name, await value.read() if isinstance(value, UploadFile) else value)
            for name, value in form.multi_items()
        ]
        _check_text({name: v for name, v in items if isinstance(v, str)}, "", 0)
        return form_fields(items)
    raise ApiError(
        406,
        f"unsupported Content-Type {kind!r}; send application/json, multipart/form-data "
        "or application/x-www-form-urlencoded",
        code="unsupported_media",
    )


_FORM_LIST = re.compile(r"^(\w+)\[\](?:\[(\w+)\])?$")


def form_fields(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Form fields as the JSON body they stand for. Lists come the way SDKs flatten them (the openai
    SDK sends `loras=[{"name": "a", "scale": 0.8}]` as `loras[][name]=a`, `loras[][scale]=0.8`):
    `x[]` items make a list, and `x[][k]` items make a list of objects, a new one each time `k`
    comes again."""
    fields: dict[str, Any] = {}
    for name, value in items:
        match = _FORM_LIST.match(name)
        if match is None:
            fields[name] = value
            continue
        key, member = match.groups()
        listed = fields.setdefault(key, [])
        if not isinstance(listed, list):
            raise ApiError(422, f"{key} is given both as a field and as a list", field=key)
        if member is None:
            listed.append(value)
            continue
        if not listed or not isinstance(listed[-1], dict) or member in listed[-1]:
            listed.append({})
        listed[-1][member] = value
    return fields


def _not_a_number(word: str) -> Any:
    raise ApiError(422, f"the body is not valid JSON: {word} is not a JSON number")


def _finite(text: str) -> float:
    """A JSON number as a float; one past a double's range would become infinity."""
    number = float(text)
    if not math.isfinite(number):
        raise ApiError(422, f"the body holds a number out of range: {text[:40]}")
    return number


def _check_multipart(content_type: str, raw: bytes) -> None:
    """A multipart body needs its boundary, and must end with it: a body cut short would otherwise
    read as one with fields missing."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ApiError(400, "multipart/form-data needs a boundary in its Content-Type", code="invalid")
    if f"--{boundary}--".encode("latin-1", "replace") not in raw:
        raise ApiError(
            400, "the multipart body is cut short: its closing boundary is missing", code="invalid"
        )


def _check_text(value: Any, where: str, depth: int) -> None:
    """Refuse text no database or JSON answer can carry, wherever it stands in the body."""
    if depth > MAX_DEPTH:
        raise ApiError(422, f"the JSON body is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if problem := text_problem(value):
            raise ApiError(422, f"{where or 'the body'} {problem}", field=where or None)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if problem := text_problem(str(key)):
                raise ApiError(422, f"a field name {problem}")
            _check_text(item, name, depth + 1)


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


async def image_bytes(value: Any, *, field: str, max_bytes: int, outbound: Outbound | None) -> bytes | None:
    """Bytes of an image given as a file, a data URL, base64 or an http(s) URL, fetched through the
    guarded fetcher (`outbound`; None: image URLs are turned off)."""
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
        if outbound is None:
            raise ApiError(
                422, f"{field}: image URLs are turned off on this server; send the bytes", field=field
            )
        return await _fetch(outbound, text, field, max_bytes)
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            422, f"{field} must be an image file, a data URL, base64 or an http(s) URL", field=field
        ) from None


async def _fetch(outbound: Outbound, url: str, field: str, max_bytes: int) -> bytes:
    """The image at `url`. Whatever goes wrong reads the same (see service/outbound.py); an answer
    that is not a 200 with a body is no image either."""
    try:
        answer = await run_in_threadpool(outbound.get, url, max_bytes=max_bytes)
    except OutboundFailed as exc:
        raise ApiError(422, f"{field}: {exc}", field=field) from None
    if answer.status != 200 or not answer.body:
        raise ApiError(422, f"{field}: {NEUTRAL}", field=field)
    return answer.body

"""OpenAI's Videos API (`/v1/videos`), see api-contracts.md §3. Code written for Sora moves here by
changing its base URL. Sora's `seconds` and `size` are mapped onto the served preset; a value the
preset cannot make is refused with a clear error, never quietly changed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from openveo.api import schemas
from openveo.api.bodies import read_fields
from openveo.api.errors import ApiError
from openveo.api.state import ApiState, state_of
from openveo.core.catalog import Catalog, Preset, UnknownModel
from openveo.core.job import FileKind, Job, JobOrigin, JobStatus, job_folder
from openveo.service.jobs import JobNotFound
from openveo.service.keys import ApiKey

router = APIRouter()

ID_PREFIX = "video_"
DEFAULT_MODEL = "sora-2"
SORA_SECONDS = ("4", "8", "12")
SORA_SIZES = {"720x1280": "9:16", "1280x720": "16:9", "1024x1792": "9:16", "1792x1024": "16:9"}
DEFAULT_SIZE = "720x1280"
POLL_AFTER_MS = "1000"
MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
FIELDS = ("prompt", "model", "seconds", "size", "input_reference")
# The open servers' dialect of create (SGLang, vLLM-Omni, FastVideo), sent through the SDK's extra_body.
OPEN_DIALECT = ("num_frames", "fps", "num_inference_steps", "guidance_scale", "negative_prompt")
EXTENSIONS = ("seed", "webhook_url", "loras", *OPEN_DIALECT)  # beyond Sora's create call
EXTEND_FIELDS = ("prompt", "seconds", "video", "model", "seed", "webhook_url")
WIRE_NAMES = {
    "duration_s": "seconds",
    "image": "input_reference",
    "output_size": "size",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "source_video": "video",
}
STATUS_WORDS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
}
VARIANTS = {"video": "video/mp4", "thumbnail": "image/jpeg", "spritesheet": "image/jpeg"}


def matches(path: str) -> bool:
    return path == "/v1/videos" or path.startswith("/v1/videos/")


# How openveo's error codes read in OpenAI's format: (status, type, code).
_ERRORS = {
    "invalid": (400, "invalid_request_error", "invalid_value"),
    "policy_violation": (400, "invalid_request_error", "moderation_blocked"),
    "unsupported_media": (400, "invalid_request_error", "unsupported_content_type"),
    "unauthenticated": (401, "invalid_request_error", "invalid_api_key"),
    "forbidden": (403, "invalid_request_error", "forbidden"),
    "not_found": (404, "invalid_request_error", "not_found"),
    "method_not_allowed": (405, "invalid_request_error", "method_not_allowed"),
    "insufficient_credits": (429, "insufficient_quota", "insufficient_quota"),
    "rate_limited": (429, "requests", "rate_limit_exceeded"),
    "unavailable": (503, "server_error", "service_unavailable"),
}


def render_error(error: ApiError) -> Response:
    """`{"error": {"message", "type", "param", "code"}}`; client errors carry `x-should-retry: false`
    so the SDK does not resend a request that cannot succeed (a rate limit may be retried)."""
    status, kind, code = _ERRORS.get(error.code, (500, "server_error", None))
    headers = dict(error.headers)
    if 400 <= status < 500 and error.code != "rate_limited":
        headers["x-should-retry"] = "false"
    body = {"error": {"message": error.message, "type": kind, "param": error.field, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _caller(request: Request) -> tuple[ApiState, ApiKey]:
    state = state_of(request)
    return state, await state.key(request, bearer=True, missing=MISSING_KEY)


def _video_id(job_id: str) -> str:
    return ID_PREFIX + job_id


async def _own_video(state: ApiState, key: ApiKey, video_id: str) -> Job:
    missing = f"Video with id '{video_id}' not found."
    return await state.owned_job(key, video_id.removeprefix(ID_PREFIX), missing, field="video_id")


def _preset(state: ApiState, model: str) -> Preset:
    try:
        return state.runtime.catalog.resolve(model)
    except UnknownModel as exc:
        raise ApiError(
            422, f"Invalid model {model!r}; available: {', '.join(exc.known)}", field="model"
        ) from None


def _seconds(value: Any, model: str, preset: Preset) -> int:
    """Sora's seconds ("4", "8", "12") that this preset can make; default the shortest of them."""
    possible = [s for s in SORA_SECONDS if int(s) in preset.durations]
    if value is None or value == "":
        if not possible:
            raise ApiError(
                422, f"{model} cannot make any of Sora's durations {SORA_SECONDS}", field="seconds"
            )
        return int(possible[0])
    if isinstance(value, bool) or not isinstance(value, (str, int)):  # a bare 8 is taken as "8"
        raise _not_a_string("seconds", value)
    text = str(value).strip()
    if text not in SORA_SECONDS:
        raise ApiError(
            422, f"Invalid seconds {text!r}; expected one of {', '.join(SORA_SECONDS)}", field="seconds"
        )
    if text not in possible:
        can = ", ".join(f"'{s}'" for s in possible) or "none of them"
        raise ApiError(
            422,
            f"seconds '{text}' is not available for {model} ({preset.name} makes "
            f"{min(preset.durations)}-{max(preset.durations)} s videos); it can do: {can}",
            field="seconds",
        )
    return int(text)


def _text_field(wire: dict[str, Any], name: str) -> str | None:
    """A field the API declares a string (a form sends every field as one)."""
    value = wire.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _not_a_string(name, value)
    return value


def _not_a_string(name: str, value: Any) -> ApiError:
    return ApiError(422, f"Invalid type for '{name}': expected a string, but got {value!r}", field=name)


def _size(value: str | None) -> tuple[str, str]:
    size = (value or DEFAULT_SIZE).strip().lower()
    if size not in SORA_SIZES:
        raise ApiError(422, f"Invalid size {size!r}; expected one of {', '.join(SORA_SIZES)}", field="size")
    return size, SORA_SIZES[size]


async def _submit(request: Request, state: ApiState, key: ApiKey, wire: dict[str, Any]) -> Job:
    model = _text_field(wire, "model") or DEFAULT_MODEL
    preset = _preset(state, model)
    size_text = _text_field(wire, "size")
    fields = {
        "prompt": wire.get("prompt"),
        "model": model,
        "seed": wire.get("seed"),
        "image": wire.get("image"),
        "loras": wire.get("loras"),
        "steps": wire.get("num_inference_steps"),
        "guidance": wire.get("guidance_scale"),
        "negative_prompt": wire.get("negative_prompt"),
    }
    if size_text is not None and size_text.strip().lower() not in SORA_SIZES:  # the open dialect's WxH
        fields["aspect_ratio"] = _native_size(size_text, model, preset)
    else:
        fields["output_size"], fields["aspect_ratio"] = _size(size_text)
    open_dialect = any(wire.get(name) is not None for name in OPEN_DIALECT) or "output_size" not in fields
    if wire.get("num_frames") is not None:
        fields["duration_s"] = _duration_of_frames(wire["num_frames"], wire.get("seconds"), model, preset)
    elif not open_dialect or wire.get("seconds") not in (None, ""):
        fields["duration_s"] = _seconds(wire.get("seconds"), model, preset)
    _check_fps(wire.get("fps"), model, preset)
    return await state.submit(
        request,
        key,
        fields,
        protocol="openai",
        wire_names=WIRE_NAMES,
        origin=JobOrigin(requested_model=model),
        webhook_url=wire.get("webhook_url") or None,
    )


def _native_size(text: str, model: str, preset: Preset) -> str:
    """The aspect ratio whose native size `text` names; another size is refused, naming the nearest."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and 0 < int(part) < 100_000 for part in parts):
        raise ApiError(422, f"Invalid size {text!r}; expected WIDTHxHEIGHT, like 832x480", field="size")
    width, height = int(parts[0]), int(parts[1])
    for aspect, native in preset.sizes.items():
        if native == (width, height):
            return aspect

    def distance(native: tuple[int, int]) -> float:  # shape first, then area
        shape = abs(math.log((native[0] / native[1]) / (width / height)))
        return shape + 0.1 * abs(math.log(native[0] * native[1] / (width * height)))

    nearest = min(preset.sizes.values(), key=distance)
    makes = ", ".join(f"{w}x{h}" for w, h in preset.sizes.values())
    raise ApiError(
        422,
        f"size {width}x{height} is not a size {model} ({preset.name}) makes; the nearest is "
        f"{nearest[0]}x{nearest[1]} (it makes {makes}, or scales to Sora's {', '.join(SORA_SIZES)})",
        field="size",
    )


def _duration_of_frames(value: Any, seconds: Any, model: str, preset: Preset) -> int:
    """The duration whose frame count is `num_frames`; another count is refused, naming the nearest."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ApiError(422, f"Invalid num_frames {value!r}; expected an integer", field="num_frames")
    count = int(value)
    lengths = {preset.frames_for(duration): duration for duration in preset.durations}
    if count not in lengths:
        nearest = min(lengths, key=lambda frames: abs(frames - count))
        raise ApiError(
            422,
            f"num_frames {count} is not a length {model} ({preset.name}) makes; the nearest is {nearest} "
            f"(it makes {', '.join(map(str, lengths))} frames at {preset.fps} fps)",
            field="num_frames",
        )
    duration = lengths[count]
    if seconds not in (None, "") and str(seconds).strip() != str(duration):
        asked = str(seconds).strip()
        made = preset.frames_for(int(asked)) if asked.isdigit() else "no video"
        raise ApiError(
            422,
            f"num_frames {count} and seconds '{asked}' disagree: seconds '{asked}' makes {made} frames; "
            "send one of them",
            field="num_frames",
        )
    return duration


def _check_fps(value: Any, model: str, preset: Preset) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool) or str(value).strip() != str(preset.fps):
        raise ApiError(
            422,
            f"fps must be {preset.fps}, the rate {model} ({preset.name}) makes; got {value!r}",
            field="fps",
        )


def video_json(job: Job, catalog: Catalog) -> dict[str, Any]:
    status = STATUS_WORDS.get(job.status, "failed")
    error = None
    if job.status == JobStatus.CANCELED:
        error = {"code": "canceled", "message": job.error or "canceled"}
    elif job.status == JobStatus.FAILED:
        error = {"code": "generation_failed", "message": job.error or "generation failed"}
    elif job.status == JobStatus.EXPIRED:
        if job.result:
            status = "completed"  # it was delivered; its files are gone now
        else:
            error = {"code": "expired", "message": job.error or "expired before it ran"}
    return {
        "id": _video_id(job.id),
        "object": "video",
        "model": job.origin.requested_model or job.model,
        "status": status,
        "progress": 100 if status == "completed" else math.floor(job.progress * 100),
        "created_at": int(job.created_at),
        "completed_at": int(job.finished_at) if status == "completed" and job.finished_at else None,
        "expires_at": int(job.expires_at) if job.expires_at else None,
        "prompt": job.request.prompt,
        "seconds": str(job.request.duration_s),
        "size": _size_text(job, catalog),
        "remixed_from_video_id": _video_id(job.origin.remix_of) if job.origin.remix_of else None,
        "error": error,
        **_made(job, catalog),
        **_loras(job),
    }


def _made(job: Job, catalog: Catalog) -> dict[str, Any]:
    """What the open servers report back: the values the video is made with (from its result once
    made, the request's or its model's defaults before)."""
    request, result, preset = job.request, job.result, _preset_of(job, catalog)
    made: dict[str, Any] = {"seed": request.seed, "guidance_scale": request.guidance}
    if preset is not None:
        made |= {
            "num_frames": preset.frames_for(request.duration_s),
            "fps": preset.fps,
            "num_inference_steps": request.steps or preset.steps,
        }
        if request.guidance is None:
            made["guidance_scale"] = preset.guidance
    if result is not None:
        made |= {"num_frames": result.num_frames, "fps": result.fps, "num_inference_steps": result.steps}
    if job.origin.extends:
        made["extended_from_video_id"] = _video_id(job.origin.extends)
    return made


def _preset_of(job: Job, catalog: Catalog) -> Preset | None:
    try:
        return catalog.resolve(job.model)
    except UnknownModel:  # a model no longer in this server's catalog
        return None


def _loras(job: Job) -> dict[str, Any]:
    """openveo's extension: the adapters a video was made with, when it had any."""
    if not job.request.loras:
        return {}
    return {"loras": [{"name": use.name, "scale": use.scale} for use in job.request.loras]}


def _state(job: Job) -> str:
    """How an unfinished or lost video's state reads in a sentence."""
    if job.status == JobStatus.EXPIRED:
        return "has expired"
    return f"is {STATUS_WORDS.get(job.status, 'failed')}"


def _size_text(job: Job, catalog: Catalog | None = None) -> str | None:
    """The size the video is delivered at: the one asked for, else the model's own for its shape."""
    size = job.request.output_size
    if size is None and job.result is not None:
        size = (job.result.width, job.result.height)
    if size is None and catalog is not None and (preset := _preset_of(job, catalog)) is not None:
        size = preset.sizes.get(job.request.aspect_ratio)
    return f"{size[0]}x{size[1]}" if size else None


def _answer(state: ApiState, job: Job, status_code: int = 200) -> JSONResponse:
    headers = {} if job.done else {"openai-poll-after-ms": POLL_AFTER_MS}
    return JSONResponse(video_json(job, state.runtime.catalog), status_code=status_code, headers=headers)


@router.post("/v1/videos", openapi_extra=schemas.body(schemas.OPENAI_CREATE, files=("input_reference",)))
async def create_video(request: Request) -> JSONResponse:
    state, key = await _caller(request)
    wire = await read_fields(request, state.settings.max_body_bytes)
    unknown = sorted(set(wire) - set(FIELDS) - set(EXTENSIONS))
    if unknown:
        raise ApiError(422, f"Unknown parameter: '{unknown[0]}'", field=unknown[0])
    wire["image"] = await state.image(wire.pop("input_reference", None), "input_reference")
    job = await _submit(request, state, key, wire)
    return _answer(state, job)


@router.get("/v1/videos")
async def list_videos(
    request: Request, limit: int = 20, after: str | None = None, order: str = "desc"
) -> dict[str, Any]:
    state, key = await _caller(request)
    if not 1 <= limit <= 100:
        raise ApiError(422, f"Invalid limit {limit}; expected 1 to 100", field="limit")
    if order not in ("asc", "desc"):
        raise ApiError(422, f"Invalid order {order!r}; expected 'asc' or 'desc'", field="order")
    cursor = after.removeprefix(ID_PREFIX) if after else None
    try:
        page, more = await run_in_threadpool(
            state.jobs.page, key.id, limit=limit, after=cursor, newest_first=order == "desc"
        )
    except JobNotFound:
        raise ApiError(422, f"Invalid after {after!r}: no such video", field="after") from None
    data = [video_json(job, state.runtime.catalog) for job in page]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


@router.get("/v1/videos/{video_id}")
async def retrieve_video(video_id: str, request: Request) -> JSONResponse:
    state, key = await _caller(request)
    return _answer(state, await _own_video(state, key, video_id))


@router.delete("/v1/videos/{video_id}")
async def delete_video(video_id: str, request: Request) -> dict[str, Any]:
    state, key = await _caller(request)
    job = await _own_video(state, key, video_id)
    await run_in_threadpool(state.jobs.delete, job.id, key.id)
    await run_in_threadpool(state.runtime.blobs.delete_prefix, job_folder(job.id))
    return {"id": video_id, "object": "video.deleted", "deleted": True}


@router.get("/v1/videos/{video_id}/content")
async def video_content(video_id: str, request: Request, variant: str = "video") -> Response:
    state, key = await _caller(request)
    if variant not in VARIANTS:
        raise ApiError(
            422, f"Invalid variant {variant!r}; expected one of {', '.join(VARIANTS)}", field="variant"
        )
    job = await _own_video(state, key, video_id)
    if job.status != JobStatus.SUCCEEDED:
        raise ApiError(404, f"Video {video_id} {_state(job)}; its content is not available", field="video_id")
    data = await run_in_threadpool(state.read_file, job, 0, cast(FileKind, variant))
    return Response(content=data, media_type=VARIANTS[variant])


@router.post("/v1/videos/{video_id}/remix", openapi_extra=schemas.body(schemas.OPENAI_REMIX))
async def remix_video(video_id: str, request: Request) -> JSONResponse:
    """A new video with the source's parameters and seed and a new prompt."""
    state, key = await _caller(request)
    source = await _own_video(state, key, video_id)
    wire = await read_fields(request, state.settings.max_body_bytes)
    unknown = sorted(set(wire) - {"prompt"})
    if unknown:
        raise ApiError(422, f"Unknown parameter: '{unknown[0]}'", field=unknown[0])
    if source.status != JobStatus.SUCCEEDED:  # a remix of nothing would be billed as a new video
        raise ApiError(
            422, f"Only a completed video can be remixed; video {video_id} {_state(source)}", field="video_id"
        )
    # The source's request again, inputs and all (its first and last frame, references, the video it
    # extended or edited), with the new prompt; validated and charged like any other.
    media = await run_in_threadpool(state.jobs.media_of, source.id)
    fields = source.request.with_media(media).as_fields()
    model = source.origin.requested_model or source.model
    fields |= {"prompt": wire.get("prompt"), "model": model, "num_videos": 1}  # one video, as Sora makes
    origin = JobOrigin(requested_model=model, remix_of=source.id, extends=source.origin.extends)
    people = source.origin.people  # the new prompt is held to what the source was held to
    job = await state.submit(
        request, key, fields, protocol="openai", wire_names=WIRE_NAMES, origin=origin, people=people
    )
    return _answer(state, job)


@router.post("/v1/videos/extensions", openapi_extra=schemas.body(schemas.OPENAI_EXTEND, files=("video",)))
async def extend_video(request: Request) -> JSONResponse:
    """The video with `seconds` more, continuing from its last frames (api/google.py: Veo's extension
    is the same request). The video is one of the caller's own, `{"id": ...}`, or an uploaded MP4."""
    state, key = await _caller(request)
    wire = await read_fields(request, state.settings.max_body_bytes)
    if "video[id]" in wire:  # the SDK's multipart form of {"id": ...}
        wire["video"] = {"id": wire.pop("video[id]")}
    unknown = sorted(set(wire) - set(EXTEND_FIELDS))
    if unknown:
        raise ApiError(422, f"Unknown parameter: '{unknown[0]}'", field=unknown[0])
    video, source = wire.get("video"), None
    data: bytes | None
    if video is None or video == "":
        raise ApiError(422, "Missing required parameter: 'video'", field="video")
    if isinstance(video, Mapping):
        source = await _own_video(state, key, str(video.get("id") or ""))
        if source.status != JobStatus.SUCCEEDED:
            raise ApiError(
                422,
                f"Only a completed video can be extended; video {video['id']} {_state(source)}",
                field="video",
            )
        data = await run_in_threadpool(state.read_file, source, 0)
    else:
        data = await state.source_video(key, video, "video")
    model = _text_field(wire, "model") or (
        source.origin.requested_model or source.model if source else DEFAULT_MODEL
    )
    seconds = wire.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (str, int))):
        raise _not_a_string("seconds", seconds)
    fields = {
        "prompt": wire.get("prompt"),
        "model": model,
        "duration_s": None if seconds in (None, "") else seconds,
        "seed": wire.get("seed"),
        "source_video": data,
    }
    job = await state.submit(
        request,
        key,
        fields,
        protocol="openai",
        wire_names=WIRE_NAMES,
        origin=JobOrigin(requested_model=model, extends=source.id if source else None),
        webhook_url=wire.get("webhook_url") or None,
    )
    return _answer(state, job)

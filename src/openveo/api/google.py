"""Google's Veo API in both forms google-genai speaks (api-contracts.md §2):

- Vertex (google-genai 3.x, `enterprise=True`): `POST /{v1|v1beta1}/[projects/P/locations/L/]publishers/
  google/models/MODEL:predictLongRunning`, polled with `:fetchPredictOperation`; videos come back
  inline as base64 (the SDK's `video.save()` needs the bytes).
- Gemini Developer API (google-genai ≤ 2.34, REST users): `POST /{v1beta|v1|v1alpha}/models/
  MODEL:predictLongRunning`, polled with `GET` of the operation; videos are `files/ID:download` URIs.

Any status but 200 is an error to the SDK, so successes are always 200, and errors use Google's
`{"error": {"code", "message", "status"}}`."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from openveo.api import schemas
from openveo.api.auth import require_key
from openveo.api.bodies import read_fields
from openveo.api.errors import ApiError
from openveo.api.resolutions import RESOLUTIONS
from openveo.api.state import ApiState, state_of
from openveo.core.catalog import MissingCapability, UnknownModel
from openveo.core.job import Job, JobOrigin, JobStatus
from openveo.core.request import needs_of
from openveo.service.keys import ApiKey
from openveo.service.policy import PERSON_GENERATION

router = APIRouter()

VERTEX, GEMINI = PROTOCOLS = ("google-vertex", "google-gemini")  # the jobs' protocol names
VERTEX_VERSIONS = ("v1", "v1beta1")
GEMINI_VERSIONS = ("v1beta", "v1", "v1alpha")
VEO_RESOLUTIONS = ("720p",)  # Veo 2's
DEFAULT_DURATION_S = 8  # Veo 2's default
MAX_SEED = 2**32 - 1
VERTEX_RESPONSE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
GEMINI_RESPONSE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
MISSING_KEY = "Method doesn't allow unregistered callers. Please use an API key (x-goog-api-key)."
# Parameters Veo takes that openveo cannot honour: refused with a reason rather than ignored.
UNSUPPORTED = {
    "storageUri": "storageUri (writing to Cloud Storage) is not supported here; omit it to receive the "
    "video bytes inline",
    "pubsubTopic": "pubsubTopic is not supported here; poll the operation instead",
    "generateAudio": "generateAudio is not supported: the open models here make silent video",
}
NOT_YET = "is not implemented by this server yet; leave it out"
# Known names, each with None (taken) or why it is refused.
BODY_FIELDS: Mapping[str, str | None] = {"instances": None, "parameters": None, "webhookConfig": None}
INSTANCE_FIELDS: Mapping[str, str | None] = {
    "prompt": None,
    "image": None,
    "lastFrame": None,
    "video": None,
    "referenceImages": None,
    "mask": None,
}
# The JSON type of each parameter, as Google's API declares it: a value of another type is refused
# before any field is read. (Numbers as strings are Google's int64 convention, not for these.)
PARAMETER_TYPES: Mapping[str, type] = {
    "sampleCount": int,
    "durationSeconds": int,
    "aspectRatio": str,
    "resolution": str,
    "fps": int,
    "seed": int,
    "personGeneration": str,
    "negativePrompt": str,
    "enhancePrompt": bool,
    "compressionQuality": str,
}
KNOWN_PARAMETERS = {*PARAMETER_TYPES, *UNSUPPORTED}
WIRE_NAMES = {
    "duration_s": "durationSeconds",
    "aspect_ratio": "aspectRatio",
    "num_videos": "sampleCount",
    "negative_prompt": "negativePrompt",
    "output_size": "resolution",
    "image": "instances[0].image",
    "last_image": "instances[0].lastFrame",
    "reference_images": "instances[0].referenceImages",
    "source_video": "instances[0].video",
    "mask": "instances[0].mask",
    "mask_mode": "instances[0].mask.maskMode",
    "webhook_url": "webhookConfig.uris[0]",
}

_ERRORS = {
    "invalid": (400, "INVALID_ARGUMENT"),
    "policy_violation": (400, "INVALID_ARGUMENT"),
    "unsupported_media": (400, "INVALID_ARGUMENT"),
    "unauthenticated": (401, "UNAUTHENTICATED"),
    "forbidden": (403, "PERMISSION_DENIED"),
    "not_found": (404, "NOT_FOUND"),
    "method_not_allowed": (405, "UNIMPLEMENTED"),
    "insufficient_credits": (429, "RESOURCE_EXHAUSTED"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "unavailable": (503, "UNAVAILABLE"),
}
_RPC_CANCELLED, _RPC_INTERNAL, _RPC_NOT_FOUND = 1, 13, 5  # google.rpc.Code
_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?")


def matches(path: str) -> bool:
    """Google's paths, with any API version (an unknown one is Google's 404): Vertex's publishers and
    projects, and the Gemini form's models and files under a version."""
    parts = path.strip("/").split("/")
    return (
        len(parts) > 2
        and _VERSION.fullmatch(parts[0]) is not None
        and parts[1] in ("publishers", "projects", "models", "files")
    )


def render_error(error: ApiError) -> Response:
    status, word = _ERRORS.get(error.code, (500, "INTERNAL"))
    body = {"error": {"code": status, "message": error.message, "status": word}}
    return JSONResponse(body, status_code=status, headers=error.headers)


async def _caller(request: Request) -> tuple[ApiState, ApiKey]:
    state = state_of(request)
    if request.headers.get("x-goog-api-key") or request.headers.get("authorization"):
        secret = request.headers.get("x-goog-api-key") or _bearer(request.headers["authorization"])
    else:
        secret = request.query_params.get("key")
    return state, await run_in_threadpool(require_key, state.runtime.db, secret, missing=MISSING_KEY)


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _split_action(model_action: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    model, _, action = model_action.rpartition(":")
    if not model or action not in allowed:
        raise ApiError(404, f"unknown method {model_action!r}; expected MODEL:{' or MODEL:'.join(allowed)}")
    return model, action


def _check_version(version: str, allowed: tuple[str, ...]) -> None:
    if version not in allowed:
        raise ApiError(404, f"unknown API version {version!r}; use one of {', '.join(allowed)}")


# ---- request parsing ----------------------------------------------------------------------------


def _request_fields(state: ApiState, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The shared request's fields from a predictLongRunning body, and its personGeneration."""
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise ApiError(422, "instances must be a list with exactly one instance", field="instances")
    instance = instances[0]
    _refuse_unknown(body, BODY_FIELDS, "the request")
    _refuse_unknown(instance, INSTANCE_FIELDS, "instances[0]")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ApiError(422, "parameters must be an object", field="parameters")
    unknown = sorted(set(parameters) - KNOWN_PARAMETERS)
    if unknown:
        raise ApiError(
            422, f"Invalid JSON payload: unknown parameter {unknown[0]!r}", field=f"parameters.{unknown[0]}"
        )
    for name, reason in UNSUPPORTED.items():
        if parameters.get(name):
            raise ApiError(422, reason, field=f"parameters.{name}")
    _check_types(parameters)
    aspect = parameters.get("aspectRatio") or "16:9"
    source = _video(instance.get("video"))
    # An extension's length is the seconds it adds; without durationSeconds, the most the model adds.
    duration = parameters.get("durationSeconds", None if source is not None else DEFAULT_DURATION_S)
    fields: dict[str, Any] = {
        "prompt": instance.get("prompt"),
        "model": model,
        "duration_s": duration,
        "aspect_ratio": parameters.get("aspectRatio") if source is not None else aspect,
        "num_videos": parameters.get("sampleCount", 1),
        "negative_prompt": parameters.get("negativePrompt"),
        "seed": _seed(parameters.get("seed")),
        "image": _image(instance.get("image"), "image"),
        "last_image": _image(instance.get("lastFrame"), "lastFrame"),
        "reference_images": _references(instance.get("referenceImages")),
        "source_video": source,
        **_mask(instance.get("mask")),
    }
    try:  # the preset that will make it (a last frame may route a Veo name to another model)
        preset = state.runtime.catalog.route(model, needs_of(fields))
    except UnknownModel as exc:
        raise ApiError(404, f"model {model!r} not found; available: {', '.join(exc.known)}") from None
    except MissingCapability:  # refused by the request's validation, naming the field
        preset = state.runtime.catalog.resolve(model)
    resolution = parameters.get("resolution")
    if resolution is not None:
        sizes = RESOLUTIONS.get(resolution.lower())
        if sizes is None or resolution.lower() not in VEO_RESOLUTIONS:
            raise ApiError(
                422, f"resolution must be 720p (Veo 2); got {resolution!r}", field="parameters.resolution"
            )
        fields["output_size"] = sizes.get(aspect)  # an unknown aspect ratio is reported by validation
    fps = parameters.get("fps")
    if fps is not None and fps != preset.fps:
        raise ApiError(
            422, f"fps must be {preset.fps} for {model} ({preset.name}); got {fps!r}", field="parameters.fps"
        )
    return fields, parameters.get("personGeneration")


TYPE_WORDS = {int: "an integer", str: "a string", bool: "true or false"}
# Parameters with a fixed set of values.
CHOICES: Mapping[str, tuple[str, ...]] = {
    "personGeneration": PERSON_GENERATION,
    "compressionQuality": ("optimized", "lossless"),
}


def _check_types(parameters: Mapping[str, Any]) -> None:
    for name, kind in PARAMETER_TYPES.items():
        value = parameters.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ApiError(
                422,
                f"Invalid value at 'parameters.{name}': must be {TYPE_WORDS[kind]}; got {value!r}",
                field=f"parameters.{name}",
            )
        if name in CHOICES and value not in CHOICES[name]:
            raise ApiError(
                422,
                f"{name} must be one of {', '.join(CHOICES[name])}; got {value!r}",
                field=f"parameters.{name}",
            )


def _refuse_unknown(given: dict[str, Any], known: Mapping[str, str | None], where: str) -> None:
    """Google refuses names it does not know (400 INVALID_ARGUMENT); openveo also refuses Veo's names
    it does not implement, rather than drop them and bill a video that ignores them."""
    for name in given:
        if name not in known:
            raise ApiError(
                422,
                f"Invalid JSON payload received. Unknown name {name!r} at '{where}': Cannot find field.",
                field=f"{where}.{name}",
            )
        if (reason := known[name]) is not None and given[name] is not None:
            raise ApiError(422, f"{where}.{name} {reason}", field=f"{where}.{name}")


def _seed(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ApiError(
            422, f"seed must be an integer from 0 to {MAX_SEED}; got {value!r}", field="parameters.seed"
        )
    return value


def _image(value: Any, name: str) -> bytes | None:
    """An image object of Veo's instances (`image`, `lastFrame`): base64 bytes and their MIME type."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(422, f"{name} must be an object with bytesBase64Encoded and mimeType", field=name)
    if value.get("gcsUri"):
        raise ApiError(
            422, f"{name}.gcsUri is not supported here; send bytesBase64Encoded", field=f"{name}.gcsUri"
        )
    encoded = value.get("bytesBase64Encoded")
    if not isinstance(encoded, str) or not encoded:
        raise ApiError(422, f"{name}.bytesBase64Encoded must be the image as a base64 string", field=name)
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ApiError(422, f"{name}.bytesBase64Encoded is not valid base64", field=name) from None


def _references(value: Any) -> list[dict[str, Any]] | None:
    """`referenceImages`: `[{"image": {bytesBase64Encoded, mimeType}, "referenceType": "asset"}]`."""
    if value is None:
        return None
    where = "instances[0].referenceImages"
    if not isinstance(value, list):
        raise ApiError(422, f"{where} must be a list of reference images", field=where)
    references = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"image", "referenceType"}:
            item_name = f"{where}[{index}]"
            raise ApiError(422, f"{item_name} must be an object: image, referenceType", field=item_name)
        image = _image(item.get("image"), f"referenceImages[{index}].image")
        references.append({"image": image, "type": item.get("referenceType")})
    return references


def _mask(value: Any) -> dict[str, Any]:
    """`mask`, which edits `video`: an image object with its `maskMode` beside the image's bytes
    (google-genai's `VideoGenerationMask`, as it goes to Vertex)."""
    if value is None:
        return {}
    where = "instances[0].mask"
    if not isinstance(value, dict) or set(value) - {"bytesBase64Encoded", "gcsUri", "mimeType", "maskMode"}:
        raise ApiError(422, f"{where} must be an object: bytesBase64Encoded, mimeType, maskMode", field=where)
    image = {name: value[name] for name in ("bytesBase64Encoded", "gcsUri", "mimeType") if name in value}
    return {"mask": _image(image, "mask"), "mask_mode": value.get("maskMode")}


class _VideoUri(str):
    """`video.uri` (or `gcsUri`): a video this server returned, resolved once the caller is known."""


def _video(value: Any) -> bytes | _VideoUri | None:
    """`instances[0].video`, to extend: inline (Vertex's `bytesBase64Encoded`, Gemini's `encodedVideo`)
    or by the URI this server gave the video (Gemini's `uri`; google-genai sends a `Video.uri` as
    Vertex's `gcsUri`)."""
    if value is None:
        return None
    where = "instances[0].video"
    if not isinstance(value, dict):
        raise ApiError(422, f"{where} must be an object with bytesBase64Encoded or uri", field=where)
    encoded = value.get("bytesBase64Encoded") or value.get("encodedVideo")
    uri = value.get("uri") or value.get("gcsUri")
    if encoded:
        if not isinstance(encoded, str):
            raise ApiError(422, f"{where}.bytesBase64Encoded must be a base64 string", field=where)
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ApiError(422, f"{where}.bytesBase64Encoded is not valid base64", field=where) from None
    if isinstance(uri, str) and uri:
        return _VideoUri(uri)
    raise ApiError(422, f"{where} must give the video's bytesBase64Encoded or its uri", field=where)


async def _source_video(state: ApiState, key: ApiKey, uri: _VideoUri) -> bytes:
    """The bytes of the caller's own video that `uri` names (`.../files/ID:download`)."""
    where = "instances[0].video"
    match = _FILE_ID.match(uri.split("?", 1)[0].rsplit("files/", 1)[-1])
    missing = f"{where} {uri!r} is not a video this server made for this key, or it has expired"
    if not match:
        raise ApiError(404, missing, field=where)
    return await state.own_video(key, match.group(1), int(match.group(2), 16), missing, where)


async def _start(request: Request, model: str, model_path: str, protocol: str) -> Job:
    state, key = await _caller(request)
    body = await read_fields(request, state.settings.max_body_bytes)
    fields, people = _request_fields(state, model, body)
    if isinstance(fields["source_video"], _VideoUri):
        fields["source_video"] = await _source_video(state, key, fields["source_video"])
    return await state.submit(
        request,
        key,
        fields,
        protocol=protocol,
        wire_names=WIRE_NAMES,
        origin=JobOrigin(requested_model=model, route=model_path),
        people=people,
        webhook_url=_webhook_url(body.get("webhookConfig")),
    )


def _webhook_url(config: Any) -> str | None:
    """Gemini's `webhookConfig: {"uris": [URL]}`: one URL, called with openveo's signed job events."""
    if config is None:
        return None
    uris = config.get("uris") if isinstance(config, dict) else None
    if not isinstance(uris, list) or len(uris) != 1:
        raise ApiError(422, "webhookConfig.uris must hold exactly one URL here", field="webhookConfig.uris")
    return uris[0]


# ---- operations ---------------------------------------------------------------------------------


def _operation_name(job: Job) -> str:
    return f"{job.origin.route}/operations/{job.id}"


def _operation(job: Job, done_response: dict[str, Any] | None) -> dict[str, Any]:
    operation: dict[str, Any] = {"name": _operation_name(job), "done": job.done}
    if not job.done:
        operation["metadata"] = {"progressPercent": round(job.progress * 100)}
        return operation
    if job.status == JobStatus.SUCCEEDED and done_response is not None:
        operation["response"] = done_response
    else:
        operation["error"] = _failure(job)
    return operation


def _failure(job: Job) -> dict[str, Any]:
    if job.status == JobStatus.CANCELED:
        return {"code": _RPC_CANCELLED, "message": job.error or "canceled"}
    if job.result:  # it was generated once; its files are gone
        return {
            "code": _RPC_NOT_FOUND,
            "message": "the result has expired; results are kept for a limited time",
        }
    return {"code": _RPC_INTERNAL, "message": f"the video was not generated and was not charged: {job.error}"}


async def _own_job(state: ApiState, key: ApiKey, job_id: str, model_path: str | None = None) -> Job:
    """The caller's operation: a job of theirs made through this API (under this model's path)."""
    missing = f"operation {job_id!r} not found"
    job = await state.owned_job(key, job_id, missing)
    if job.protocol not in PROTOCOLS or (model_path is not None and job.origin.route != model_path):
        raise ApiError(404, missing)
    return job


async def _vertex_response(state: ApiState, job: Job) -> dict[str, Any] | None:
    if job.status != JobStatus.SUCCEEDED:
        return None
    videos = []
    for index in range(len(job.videos)):
        data = await run_in_threadpool(state.read_file, job, index)
        videos.append({"bytesBase64Encoded": base64.b64encode(data).decode(), "mimeType": "video/mp4"})
    return {"@type": VERTEX_RESPONSE, "raiMediaFilteredCount": 0, "videos": videos}


def _gemini_response(request: Request, state: ApiState, job: Job, version: str) -> dict[str, Any] | None:
    if job.status != JobStatus.SUCCEEDED:
        return None
    base = state.base_url(request)
    samples = [
        {"video": {"uri": f"{base}/{version}/files/{job.id}{index:x}:download?alt=media"}}
        for index in range(len(job.videos))
    ]
    return {
        "@type": GEMINI_RESPONSE,
        "generateVideoResponse": {"generatedSamples": samples, "raiMediaFilteredCount": 0},
    }


# ---- Vertex form --------------------------------------------------------------------------------


async def _vertex(request: Request, version: str, model_path: str, model_action: str) -> JSONResponse:
    _check_version(version, VERTEX_VERSIONS)
    model, action = _split_action(model_action, ("predictLongRunning", "fetchPredictOperation"))
    path = f"{model_path}/{model}"
    if action == "predictLongRunning":
        job = await _start(request, model, path, VERTEX)
        return JSONResponse({"name": _operation_name(job)})
    state, key = await _caller(request)
    body = await read_fields(request, state.settings.max_body_bytes)
    name = str(body.get("operationName") or "")
    prefix, _, job_id = name.rpartition("/operations/")
    if not job_id or prefix != path:
        raise ApiError(
            422, f"operationName must be {path}/operations/ID; got {name!r}", field="operationName"
        )
    job = await _own_job(state, key, job_id, path)
    return JSONResponse(_operation(job, await _vertex_response(state, job)))


@router.post("/{version}/publishers/google/models/{model_action}", openapi_extra=schemas.GOOGLE_VERTEX)
async def vertex_global(version: str, model_action: str, request: Request) -> JSONResponse:
    return await _vertex(request, version, "publishers/google/models", model_action)


@router.post(
    "/{version}/projects/{project}/locations/{location}/publishers/google/models/{model_action}",
    openapi_extra=schemas.GOOGLE_VERTEX,
)
async def vertex_project(
    version: str, project: str, location: str, model_action: str, request: Request
) -> JSONResponse:
    base = f"projects/{project}/locations/{location}/publishers/google/models"
    return await _vertex(request, version, base, model_action)


# ---- Gemini Developer form ----------------------------------------------------------------------


@router.post(
    "/{version}/models/{model_action}", openapi_extra=schemas.body(schemas.GOOGLE_PREDICT, forms=False)
)
async def gemini_start(version: str, model_action: str, request: Request) -> JSONResponse:
    _check_version(version, GEMINI_VERSIONS)
    model, _ = _split_action(model_action, ("predictLongRunning",))
    job = await _start(request, model, f"models/{model}", GEMINI)
    return JSONResponse({"name": _operation_name(job)})


@router.get("/{version}/models/{model}/operations/{operation_id}")
async def gemini_operation(version: str, model: str, operation_id: str, request: Request) -> JSONResponse:
    _check_version(version, GEMINI_VERSIONS)
    state, key = await _caller(request)
    job = await _own_job(state, key, operation_id, f"models/{model}")
    return JSONResponse(_operation(job, _gemini_response(request, state, job, version)))


_FILE_ID = re.compile(r"([0-9a-f]{32})([0-9a-f])(?::download)?$")


@router.get("/{version}/files/{file_path:path}")
async def gemini_download(version: str, file_path: str, request: Request) -> Response:
    """`files/ID:download?alt=media`. The SDK sends the whole URI after `files/` when it is http://
    (not https://), so the id is taken from the last `files/` segment of whatever arrives."""
    _check_version(version, GEMINI_VERSIONS)
    state, key = await _caller(request)
    match = _FILE_ID.match(file_path.rsplit("files/", 1)[-1])
    if not match:
        raise ApiError(404, f"file {file_path!r} not found")
    job_id, index = match.group(1), int(match.group(2), 16)
    job = await _own_job(state, key, job_id)
    if job.status != JobStatus.SUCCEEDED or index >= len(job.videos):
        raise ApiError(404, f"file {file_path!r} not found or expired")
    data = await run_in_threadpool(state.read_file, job, index)
    return Response(content=data, media_type="video/mp4")

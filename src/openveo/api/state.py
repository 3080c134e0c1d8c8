"""What every protocol's routes share: the runtime, auth, the one submit path, the caller's own jobs,
and links to result files. Domain errors from the service are turned into `ApiError` here, so each
protocol only renders them."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from openveo import logs
from openveo.api.auth import key_from_headers, require_key
from openveo.api.bodies import image_bytes
from openveo.api.errors import ApiError
from openveo.api.watch import JobWatcher
from openveo.config import Settings
from openveo.core.job import FileKind, Job, JobOrigin, JobStatus
from openveo.core.request import InvalidRequest
from openveo.service.billing import InsufficientCredits
from openveo.service.jobs import JobNotFound, Jobs
from openveo.service.keys import ApiKey
from openveo.service.policy import ModerationUnavailable, PolicyViolation
from openveo.service.ratelimit import RateLimited
from openveo.service.runtime import Runtime
from openveo.service.submit import Submission, Submitter
from openveo.store.blobs import BlobMissing, StorageUnavailable

log = logging.getLogger("openveo.api")


@dataclass
class ApiState:
    runtime: Runtime
    watcher: JobWatcher
    submitter: Submitter

    @property
    def jobs(self) -> Jobs:
        return self.runtime.jobs

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    async def key(self, request: Request, *, bearer: bool = False, missing: str) -> ApiKey:
        secret = key_from_headers(request, bearer=bearer)
        return await run_in_threadpool(require_key, self.runtime.db, secret, missing=missing)

    async def submit(
        self,
        request: Request,
        key: ApiKey,
        fields: Mapping[str, Any],
        *,
        protocol: str,
        wire_names: Mapping[str, str] | None = None,
        origin: JobOrigin | None = None,
        people: str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        waited: bool = False,
    ) -> Job:
        """Queue the request the fields describe (see service/submit.py), answering a refusal as an
        `ApiError` that names the field by its `wire_names` spelling."""
        submission = Submission(
            protocol=protocol,
            origin=dataclasses.replace(origin or JobOrigin(), base_url=self.base_url(request), people=people),
            people=people,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
            waited=waited,
        )

        def submit() -> Job:
            return self.submitter.submit(key, self.submitter.request(fields), submission)

        try:
            job = await run_in_threadpool(submit)
        except InvalidRequest as exc:
            wire = wire_name(exc.field, wire_names or {})
            raise ApiError(422, exc.message(wire), field=wire) from None
        except RateLimited as exc:
            raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
        except PolicyViolation as exc:
            raise ApiError(400, str(exc), code="policy_violation", field="prompt") from None
        except ModerationUnavailable as exc:
            log.error("prompt not accepted: %s", exc)
            raise ApiError(
                503, "the content check is unavailable; try again shortly", headers={"Retry-After": "5"}
            ) from None
        except InsufficientCredits as exc:
            raise ApiError(406, str(exc), code="insufficient_credits") from None
        logs.job_id.set(job.id)  # the rest of this request's log lines name its job
        return job

    async def owned_job(self, key: ApiKey, job_id: str, missing: str, *, field: str | None = None) -> Job:
        """The caller's own job, or a 404 saying `missing` (another key's job is never shown)."""
        try:
            return await run_in_threadpool(self.jobs.get, job_id, key.id)
        except JobNotFound:
            raise ApiError(404, missing, field=field) from None

    async def own_video(self, key: ApiKey, job_id: str, index: int, missing: str, field: str) -> bytes:
        """A video this server made for the caller (a source to extend), or a 404 saying `missing`:
        another key's video, or one not (or no longer) there, is never read."""
        job = await self.owned_job(key, job_id, missing, field=field)
        if job.status != JobStatus.SUCCEEDED or not 0 <= index < len(job.videos):
            raise ApiError(404, missing, field=field)
        return await run_in_threadpool(self.read_file, job, index)

    async def source_video(self, key: ApiKey, value: Any, field: str = "source_video") -> bytes | None:
        """A video to extend: `{"id": JOB}` (the caller's own video from this server), or its bytes as
        a file, a data URL or base64 (never fetched from a URL)."""
        if isinstance(value, Mapping):
            job_id = value.get("id")
            if not isinstance(job_id, str) or set(value) - {"id", "index"}:
                raise ApiError(422, f'{field} must be {{"id": JOB}} or the video\'s bytes', field=field)
            index = value.get("index", 0)
            missing = f"{field}: no finished video {job_id!r} for this key"
            return await self.own_video(key, job_id, index if isinstance(index, int) else -1, missing, field)
        if isinstance(value, str) and value.strip().startswith(("http://", "https://")):
            raise ApiError(
                422, f'{field} is not fetched from URLs; send the bytes or {{"id": JOB}}', field=field
            )
        return await image_bytes(value, field=field, max_bytes=self.settings.max_video_bytes, outbound=None)

    async def references(self, value: Any, field: str = "reference_images") -> Any:
        """Reference images (each an image input, or `{"image": ..., "type": ...}`) as bytes; what is not
        a list is left for the request's validation to refuse."""
        if not isinstance(value, list):
            return value
        out = []
        for index, item in enumerate(value):
            entry = dict(item) if isinstance(item, Mapping) else {"image": item}
            entry["image"] = await self.image(entry.get("image"), f"{field}[{index}]")
            out.append(entry)
        return out

    async def image(self, value: Any, field: str = "image") -> bytes | None:
        """An image input as bytes, within the configured size and URL policy."""
        return await image_bytes(
            value,
            field=field,
            max_bytes=self.settings.max_image_bytes,
            outbound=self.runtime.outbound if self.settings.allow_image_urls else None,
        )

    def base_url(self, request: Request) -> str:
        """Where clients reach this server: the configured public URL, else what the request says
        (X-Forwarded-Proto/Host from a reverse proxy first)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
        host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
        return f"{proto}://{host.split(',')[0].strip()}"

    def file_url(self, base_url: str, job: Job, index: int = 0, kind: FileKind = "video") -> str | None:
        """A link to one of a job's files, valid until its retention ends: presigned by the store
        (S3), else signed by this server."""
        videos = job.videos
        if job.status != JobStatus.SUCCEEDED or index >= len(videos) or job.expires_at is None:
            return None
        blob_key = videos[index].file(kind)
        if blob_key is None:
            return None
        presigned = self.runtime.blobs.presigned_url(blob_key, job.expires_at)
        return (
            presigned or f"{base_url}/files/{blob_key}?{self.runtime.signer.query(blob_key, job.expires_at)}"
        )

    def read_file(self, job: Job, index: int = 0, kind: FileKind = "video") -> bytes:
        blob_key = job.videos[index].file(kind)
        try:
            if blob_key is None:
                raise BlobMissing(kind)
            return self.runtime.blobs.read_bytes(blob_key)
        except BlobMissing:
            raise ApiError(404, "this result is no longer stored (its retention has ended)") from None
        except StorageUnavailable as exc:
            log.error("result store: %s", exc)
            raise ApiError(503, "the result store is unavailable; try again shortly") from None


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.openveo
    return state


def wire_name(field: str, names: Mapping[str, str]) -> str:
    """A request field as a protocol spells it; an item of a list field (`reference_images[1]`) by
    its list's wire name, with the same index."""
    if field in names:
        return names[field]
    root, bracket, rest = field.partition("[")
    return f"{names.get(root, root)}{bracket}{rest}"

"""What every protocol's routes share: the runtime, auth, the one submit path, and result links."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from openveo import logs
from openveo.api.auth import RateLimiter, key_from_headers, require_key
from openveo.api.bodies import image_bytes
from openveo.api.errors import ApiError
from openveo.api.watch import JobWatcher
from openveo.service import refusals
from openveo.service.billing import InsufficientCredits, to_micro
from openveo.service.jobs import MAX_IDEMPOTENCY_KEY, Job
from openveo.service.keys import ApiKey
from openveo.service.policy import ContentPolicy, ModerationUnavailable, PolicyViolation
from openveo.service.requests import GenerationRequest, InvalidRequest, Limits, build_request
from openveo.service.runtime import Runtime
from openveo.service.webhooks import valid_url
from openveo.store.blobs import BlobMissing, StorageUnavailable

log = logging.getLogger("openveo.api")


@dataclass
class ApiState:
    runtime: Runtime
    watcher: JobWatcher
    limiter: RateLimiter
    policy: ContentPolicy

    @property
    def jobs(self):
        return self.runtime.jobs

    @property
    def settings(self):
        return self.runtime.settings

    def routed_models(self) -> list[str]:
        """The presets the protocols send jobs to: the served model (first) and alias targets."""
        catalog, settings = self.runtime.catalog, self.settings
        names = (settings.model, *settings.aliases.values())
        return list(dict.fromkeys(catalog.resolve(name).name for name in names))

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
        extra: dict[str, Any] | None = None,
        people: str | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Validate, rate-limit, check the content policy, price, reserve and queue: the one path every
        protocol submits through. `people` is Google's personGeneration, where the request gave one."""
        settings = self.settings
        limits = Limits(max_prompt_chars=settings.max_prompt_chars, max_image_bytes=settings.max_image_bytes)
        try:
            generation = build_request(fields, self.runtime.catalog, limits)
        except InvalidRequest as exc:
            wire = (wire_names or {}).get(exc.field, exc.field)
            raise ApiError(422, exc.message(wire), field=wire) from None
        if webhook_url is not None and (problem := valid_url(webhook_url)):
            raise ApiError(422, f"webhook_url {problem}", field="webhook_url")
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ApiError(422, f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters")
        self.limiter.check(key.id)
        generation = await self._allowed(generation, key, protocol, people)
        preset = self.runtime.catalog.resolve(generation.model)
        cost = to_micro(preset.cost(generation.duration_s, generation.num_videos))
        job_extra = {"base_url": self.base_url(request), **(extra or {})}
        try:
            job = await run_in_threadpool(
                self.jobs.submit,
                key,
                generation,
                cost=cost,
                protocol=protocol,
                extra=job_extra,
                webhook_url=webhook_url,
                idempotency_key=idempotency_key,
            )
        except InsufficientCredits as exc:
            raise ApiError(406, str(exc), code="insufficient_credits") from None
        logs.job_id.set(job.id)  # the rest of this request's log lines name its job
        log.info("job %s: queued for %s (%s, key %d)", job.id, job.model, protocol, key.id)
        return job

    async def _allowed(
        self, generation: GenerationRequest, key: ApiKey, protocol: str, people: str | None
    ) -> GenerationRequest:
        """The request as the content policy lets it run; a refusal is logged and never queued."""
        context = {"model": generation.model, "protocol": protocol, "key_id": key.id}
        try:
            await run_in_threadpool(self.policy.check, generation.prompt, people=people, context=context)
        except PolicyViolation as exc:
            log.warning(
                "prompt refused by the content policy (%s; %s, key %d): %s; prompt %r",
                exc.source,
                protocol,
                key.id,
                exc.reason,
                generation.prompt[:200],
            )
            await run_in_threadpool(
                refusals.record,
                self.runtime.db,
                key_id=key.id,
                protocol=protocol,
                model=generation.model,
                source=exc.source,
                reason=exc.reason,
                prompt=generation.prompt,
            )
            raise ApiError(400, str(exc), code="policy_violation", field="prompt") from None
        except ModerationUnavailable as exc:
            log.error("prompt not accepted: %s", exc)
            raise ApiError(
                503, "the content check is unavailable; try again shortly", headers={"Retry-After": "5"}
            ) from None
        negative = self.policy.negative_prompt(generation.negative_prompt, people)
        return dataclasses.replace(generation, negative_prompt=negative)

    async def image(self, value: Any, field: str = "image") -> bytes | None:
        """An image input as bytes, within the configured size and URL policy."""
        return await image_bytes(
            value,
            field=field,
            max_bytes=self.settings.max_image_bytes,
            allow_urls=self.settings.allow_image_urls,
        )

    def base_url(self, request: Request) -> str:
        """Where clients reach this server: the configured public URL, else what the request says
        (X-Forwarded-Proto/Host from a reverse proxy first)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
        host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
        return f"{proto}://{host.split(',')[0].strip()}"

    def file_url(self, base_url: str, job: Job, index: int = 0, kind: str = "video") -> str | None:
        """A link to one of a job's files, valid until its retention ends: presigned by the store
        (S3), else signed by this server."""
        videos = job.videos
        if job.status != "succeeded" or index >= len(videos) or job.expires_at is None:
            return None
        blob_key = videos[index][kind]
        presigned = self.runtime.blobs.presigned_url(blob_key, job.expires_at)
        return (
            presigned or f"{base_url}/files/{blob_key}?{self.runtime.signer.query(blob_key, job.expires_at)}"
        )

    def read_file(self, job: Job, index: int = 0, kind: str = "video") -> bytes:
        try:
            return self.runtime.blobs.read_bytes(job.videos[index][kind])
        except BlobMissing:
            raise ApiError(404, "this result is no longer stored (its retention has ended)") from None
        except StorageUnavailable as exc:
            log.error("result store: %s", exc)
            raise ApiError(503, "the result store is unavailable; try again shortly") from None


def state_of(request: Request) -> ApiState:
    return request.app.state.openveo

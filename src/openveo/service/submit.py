"""Submitting a generation: the one path every protocol queues work through.

    fields ─request()─▶ GenerationRequest ─submit()─▶ webhook URL, rate limit, content policy,
                                                      then price, reserve and enqueue (Jobs.submit)

Each step raises a domain error (`InvalidRequest`, `RateLimited`, `PolicyViolation`,
`ModerationUnavailable`, `InsufficientCredits`) that the protocol renders in its own format; a refused
request is never queued or charged. Refused prompts are kept for the operator's audit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from openveo import logs
from openveo.core.catalog import Catalog
from openveo.core.job import Job, JobOrigin
from openveo.core.request import NO_LORAS, GenerationRequest, InvalidRequest, Limits, build_request
from openveo.service import refusals
from openveo.service.jobs import MAX_IDEMPOTENCY_KEY, Jobs
from openveo.service.keys import ApiKey
from openveo.service.loras import LoraRegistry
from openveo.service.outbound import Outbound
from openveo.service.policy import ContentPolicy, PolicyViolation, policy_from_settings
from openveo.service.ratelimit import RateLimiter
from openveo.service.runtime import Runtime
from openveo.service.webhooks import valid_url
from openveo.store.db import Database

log = logging.getLogger("openveo.api")


@dataclass(frozen=True)
class Submission:
    """Everything about a submit besides the request itself."""

    protocol: str  # which API accepted it
    origin: JobOrigin = dataclasses.field(default_factory=JobOrigin)
    people: str | None = None  # Google's personGeneration, where the request gave one
    webhook_url: str | None = None
    idempotency_key: str | None = None
    waited: bool = False  # a synchronous call waits for the job (Jobs.hold)


@dataclass
class Submitter:
    db: Database
    jobs: Jobs
    catalog: Catalog
    limits: Limits
    policy: ContentPolicy
    limiter: RateLimiter
    outbound: Outbound  # webhook URLs must point where it may send
    loras: LoraRegistry  # the adapters a request may name

    def request(self, fields: Mapping[str, Any]) -> GenerationRequest:
        """The validated request that raw fields (named as `GenerationRequest`'s) describe."""
        registry = self.loras.checked() if fields.get("loras") else NO_LORAS  # a query only when asked
        return build_request(fields, self.catalog, self.limits, registry)

    def submit(self, key: ApiKey, request: GenerationRequest, submission: Submission) -> Job:
        """Queue `request` as `key`'s job; see the module's docstring for what is checked first."""
        if submission.webhook_url is not None:
            if problem := valid_url(submission.webhook_url):
                raise InvalidRequest("webhook_url", problem)
            if self.outbound.refusal(submission.webhook_url):
                raise InvalidRequest("webhook_url", "must point at a public address; this one is internal")
        idempotency_key = submission.idempotency_key
        if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidRequest("Idempotency-Key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
        self.limiter.check(key.id)
        request = self._allowed(key, request, submission)
        job = self.jobs.submit(
            key,
            request,
            protocol=submission.protocol,
            origin=submission.origin,
            webhook_url=submission.webhook_url,
            idempotency_key=idempotency_key,
            waited=submission.waited,
        )
        logs.job_id.set(job.id)  # this thread's log lines from here on name the job
        log.info("job %s: queued for %s (%s, key %d)", job.id, job.model, submission.protocol, key.id)
        return job

    def _allowed(self, key: ApiKey, request: GenerationRequest, submission: Submission) -> GenerationRequest:
        """The request as the content policy lets it run; a refusal is logged, kept, and raised."""
        context = {"model": request.model, "protocol": submission.protocol, "key_id": key.id}
        try:
            self.policy.check(request.prompt, people=submission.people, context=context)
        except PolicyViolation as exc:
            log.warning(
                "prompt refused by the content policy (%s; %s, key %d): %s; prompt %r",
                exc.source,
                submission.protocol,
                key.id,
                exc.reason,
                request.prompt[:200],
            )
            refusals.record(
                self.db,
                key_id=key.id,
                protocol=submission.protocol,
                model=request.model,
                source=exc.source,
                reason=exc.reason,
                prompt=request.prompt,
            )
            raise
        negative = self.policy.negative_prompt(request.negative_prompt, submission.people)
        return dataclasses.replace(request, negative_prompt=negative)


def open_submitter(runtime: Runtime) -> Submitter:
    """The API server's submit path, as the deployment's settings describe it."""
    settings = runtime.settings
    return Submitter(
        db=runtime.db,
        jobs=runtime.jobs,
        catalog=runtime.catalog,
        limits=Limits(
            max_prompt_chars=settings.max_prompt_chars,
            max_image_bytes=settings.max_image_bytes,
            max_video_bytes=settings.max_video_bytes,
            max_lora_rank=settings.lora_max_rank,
        ),
        policy=policy_from_settings(settings, runtime.outbound),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        outbound=runtime.outbound,
        loras=runtime.loras,
    )

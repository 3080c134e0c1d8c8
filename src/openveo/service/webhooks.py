"""Webhooks after the Standard Webhooks spec (standardwebhooks.com): when a job with a `webhook_url`
finishes, a delivery row is written in the same transaction (an outbox), and a dispatcher POSTs it,
signed, retrying with backoff until the receiver answers 2xx. Jobs never wait for a webhook.

Each key has its own signing secret (`whsec_…`), derived from the server secret, so one customer's
secret cannot sign another's events."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection, select, update

from openveo.core.job import JobStatus
from openveo.service.outbound import Outbound, OutboundFailed
from openveo.store.db import Database
from openveo.store.schema import jobs, webhook_deliveries

log = logging.getLogger("openveo.webhooks")

# Retry delays as multiples of the first one (5 s by default: 5 s, 30 s, 2 min, ... up to 1 h),
# then the delivery is marked failed.
BACKOFF_STEPS = (1, 6, 24, 120, 360, 720, 720, 720)
CLAIM_S = 60.0  # a dispatcher owns a due delivery this long while it sends it
SEND_TIMEOUT_S = 10.0
EVENTS = {
    JobStatus.SUCCEEDED: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELED: "job.canceled",
}


def key_secret(server_secret: bytes, key_id: int) -> str:
    raw = hmac.new(server_secret, f"webhook-secret:{key_id}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value: v1,base64(HMAC-SHA256(secret, "id.timestamp.body"))."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def enqueue(conn: Connection, job_id: str, status: JobStatus) -> None:
    """Called inside the transaction that finishes a job: one delivery if the job asked for one."""
    url = conn.execute(select(jobs.c.webhook_url).where(jobs.c.id == job_id)).scalar()
    if not url or status not in EVENTS:
        return
    now = time.time()
    conn.execute(
        webhook_deliveries.insert().values(
            message_id="msg_" + secrets.token_hex(12),
            job_id=job_id,
            url=url,
            event=EVENTS[status],
            payload="",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


@dataclass
class Delivery:
    id: int
    message_id: str
    job_id: str
    url: str
    event: str
    payload: str
    attempts: int


class Dispatcher:
    """Sends due deliveries. `render(job_id)` gives the event's data and `secret_for(job_id)` its secret."""

    def __init__(
        self,
        db: Database,
        render: Callable[[str], dict[str, Any]],
        secret_for: Callable[[str], str],
        first_retry_s: float = 5.0,
        outbound: Outbound | None = None,
    ) -> None:
        self.db = db
        self.backoff = [first_retry_s * step for step in BACKOFF_STEPS]
        self.render = render
        self.secret_for = secret_for
        self.outbound = dataclasses.replace(outbound or Outbound(), timeout_s=SEND_TIMEOUT_S)

    def run_due(self, limit: int = 20) -> int:
        """Send what is due now; returns how many were attempted."""
        due = self._claim(limit)
        for delivery in due:
            self._send(delivery)
        return len(due)

    def _claim(self, limit: int) -> list[Delivery]:
        now = time.time()
        claimed = []
        with self.db.write() as conn:
            rows = conn.execute(
                select(webhook_deliveries)
                .where(webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now)
                .order_by(webhook_deliveries.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.id == row.id)
                    .values(next_attempt_at=now + CLAIM_S)
                )
                claimed.append(
                    Delivery(
                        row.id, row.message_id, row.job_id, row.url, row.event, row.payload, row.attempts
                    )
                )
        return claimed

    def _send(self, delivery: Delivery) -> None:
        payload, error = delivery.payload, None
        try:  # whatever goes wrong is recorded on this delivery alone and retried with backoff
            if not payload:  # rendered once, so every retry carries the same body
                data = self.render(delivery.job_id)
                payload = json.dumps({"type": delivery.event, "timestamp": _iso_now(), "data": data})
            stamp = int(time.time())
            signature = sign(self.secret_for(delivery.job_id), delivery.message_id, stamp, payload)
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery.message_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": signature,
                "user-agent": "openveo-webhooks",
            }
            answer = self.outbound.post(
                delivery.url,
                content=payload,
                headers=headers,
                redirects=0,  # a redirect is a failure
            )
            if not 200 <= answer.status < 300:
                error = f"HTTP {answer.status}"
        except OutboundFailed as exc:
            error = exc.reason  # the delivery record is the operator's, not the client's
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._record(delivery, payload, error)

    def _record(self, delivery: Delivery, payload: str, error: str | None) -> None:
        attempts = delivery.attempts + 1
        now = time.time()
        values: dict[str, Any] = {"attempts": attempts, "payload": payload, "last_error": error}
        if error is None:
            values.update(status="delivered", delivered_at=now)
        elif attempts > len(self.backoff):
            values.update(status="failed")
            log.warning(
                "webhook %s for job %s gave up after %d attempts: %s",
                delivery.message_id,
                delivery.job_id,
                attempts,
                error,
            )
        else:
            values.update(next_attempt_at=now + self.backoff[attempts - 1])
            log.info(
                "webhook %s for job %s failed (%s); retry %d",
                delivery.message_id,
                delivery.job_id,
                error,
                attempts,
            )
        with self.db.write() as conn:
            conn.execute(
                update(webhook_deliveries).where(webhook_deliveries.c.id == delivery.id).values(**values)
            )


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def valid_url(value: object) -> str | None:
    """Why a webhook URL cannot be used, or None if it can: http(s), with a host, parseable."""
    if not isinstance(value, str) or len(value) > 2000:
        return "must be an http(s) URL of at most 2000 characters"
    try:
        url = httpx.URL(value)
    except Exception:
        return "is not a valid URL"
    if url.scheme not in ("http", "https") or not url.host:
        return "must be an http(s) URL with a host"
    return None

"""The tables. Times are Unix seconds (float); money is integer micro-credits, so sums are exact."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 of the secret; never the secret
    Column("prefix", String(16), nullable=False),  # first characters, to tell keys apart in listings
    Column("balance", BigInteger, nullable=False, default=0),  # = sum of its ledger entries, kept in step
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

# Append-only: rows are inserted, never updated or deleted.
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False, index=True),
    Column("job_id", String(40), index=True),
    Column("kind", String(16), nullable=False),  # grant | reserve | charge | refund
    Column("amount", BigInteger, nullable=False),  # signed change of the balance
    Column("balance_after", BigInteger, nullable=False),
    Column("note", Text),
    Column("created_at", Float, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", Integer, ForeignKey("api_keys.id"), nullable=False),
    Column("protocol", String(32), nullable=False),  # which API accepted it (its status words map from ours)
    Column("model", String(100), nullable=False),  # preset name: workers claim only models they serve
    Column("request", Text, nullable=False),  # GenerationRequest as JSON, without the image
    Column("image", LargeBinary),
    Column("status", String(16), nullable=False),  # core.job.JobStatus
    Column("cost", BigInteger, nullable=False),
    Column("billing", String(16), nullable=False),  # core.job.Billing
    Column("attempts", Integer, nullable=False, default=0),
    Column("worker_id", String(200)),
    Column("lease_expires_at", Float),
    Column("progress_step", Integer, nullable=False, default=0),
    Column("progress_total", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("result", Text),  # core.job.JobResult as JSON: files, seeds, timings
    Column("webhook_url", Text),
    Column("idempotency_key", String(200)),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("expires_at", Float),
    Column("updated_at", Float, nullable=False),
    Column("deleted_at", Float),  # deleted by its owner: files gone, hidden from every API
    Column("step_s", Float),  # mean seconds per denoising step of a succeeded run (for the metrics)
    Column("origin", Text),  # core.job.JobOrigin as JSON: what the job's protocol answers about it by
    # A synchronous call (Segmind's /v1) waits for the job and renews this while it does; a job whose
    # waiter is gone (its server died mid-call) would be made and charged for nobody: it is canceled.
    Column("waiter_until", Float),
    # The sha256 of each LoRA the job applies, space-separated: a worker that holds them prefers it.
    Column("loras", Text),
    UniqueConstraint("key_id", "idempotency_key", name="uq_jobs_key_idempotency"),
    Index("ix_jobs_queue", "status", "model", "created_at"),
    Index("ix_jobs_key_created", "key_id", "created_at"),
)

# A job's media inputs besides its first frame (`jobs.image`): the last frame, and the further inputs
# (reference images, a source video, a mask) as the request model gains them. Only the claiming worker
# and a remix read them; deleting the job deletes them.
job_inputs = Table(
    "job_inputs",
    metadata,
    Column("job_id", String(40), ForeignKey("jobs.id"), primary_key=True),
    Column("name", String(40), primary_key=True),  # the GenerationRequest field it fills
    Column("data", LargeBinary, nullable=False),
)

# Transactional outbox: a delivery row is written in the same transaction as the job's state change.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, unique=True),
    Column("job_id", String(40), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("event", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float),
    Index("ix_webhook_due", "status", "next_attempt_at"),
)

# Every worker process, live or gone: what it serves and what it is doing (for status and readiness).
workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("models", Text, nullable=False),  # JSON list of preset names
    Column("device", String(100), nullable=False),
    Column("state", String(16), nullable=False),  # loading | idle | busy | draining | stopped
    Column("current_job", String(40)),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Index("ix_workers_heartbeat", "heartbeat_at"),
)

# Secrets every API server and worker of one deployment shares, whatever host or data dir it runs on.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),  # hex
    Column("created_at", Float, nullable=False),
)

# Prompts the content policy refused: never jobs, never charged, but an operator audits them.
refusals = Table(
    "refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("key_id", Integer, nullable=False),
    Column("protocol", String(20), nullable=False),
    Column("model", String(200), nullable=False),
    Column("source", String(20), nullable=False),  # terms | patterns | people | moderation
    Column("reason", Text, nullable=False),
    Column("prompt", Text, nullable=False),  # its first PROMPT_CHARS characters
    Index("ix_refusals_created", "created_at"),
)

# LoRA adapters the operator registered (`openveo loras add`): requests name them, never a file.
# The file itself lives in the result store under loras/<sha256>.safetensors, where every worker finds it.
loras = Table(
    "loras",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("shape", Text, nullable=False),  # core.loras.LoraShape as JSON
    Column("source", Text, nullable=False),
    Column("model", String(100)),
    Column("created_at", Float, nullable=False),
)

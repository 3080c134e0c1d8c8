"""jobs.origin: how a job came in, as a typed object (was `extra`, a free-form dict)

Revision ID: 0007
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VIDEO_ID_PREFIX = "video_"  # OpenAI's video ids were stored whole; the origin keeps the job id
_jobs = sa.table(
    "jobs", sa.column("id", sa.String), sa.column("extra", sa.Text), sa.column("origin", sa.Text)
)


def _origin(extra: dict) -> dict:
    remix = extra.get("remixed_from_video_id")
    origin = {
        "base_url": extra.get("base_url") or None,
        "requested_model": extra.get("model"),
        "route": extra.get("model_path"),
        "remix_of": remix.removeprefix(VIDEO_ID_PREFIX) if remix else None,
    }
    return {name: value for name, value in origin.items() if value}


def _extra(origin: dict) -> dict:
    extra = {
        "base_url": origin.get("base_url"),
        "model": origin.get("requested_model"),
        "model_path": origin.get("route"),
        "remixed_from_video_id": VIDEO_ID_PREFIX + origin["remix_of"] if origin.get("remix_of") else None,
    }
    return {name: value for name, value in extra.items() if value}


def _rewrite(source: str, target: str, convert) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_jobs.c.id, _jobs.c[source])).all()
    for job_id, text in rows:
        value = json.dumps(convert(json.loads(text or "{}")))
        conn.execute(sa.update(_jobs).where(_jobs.c.id == job_id).values({target: value}))


def upgrade() -> None:
    op.add_column("jobs", sa.Column("origin", sa.Text()))
    _rewrite("extra", "origin", _origin)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("extra")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("extra", sa.Text()))
    _rewrite("origin", "extra", _extra)
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("origin")

"""Prompts the content policy refused, kept in the database: they never become jobs, so without this
an operator would see them only in one API server's log. Every API server writes here, so the audit
(`openveo refusals`) and the `/metrics` counter cover the whole deployment."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from openveo.store.db import Database
from openveo.store.schema import refusals

PROMPT_CHARS = 1000  # of a refused prompt, kept for the audit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    id: int
    created_at: float
    key_id: int
    protocol: str
    model: str
    source: str  # which rule: terms | patterns | people | moderation
    reason: str
    prompt: str


def record(
    db: Database, *, key_id: int, protocol: str, model: str, source: str, reason: str, prompt: str
) -> bool:
    """False when the database could not take it: the caller still refuses the prompt, and its log
    line is then the only record."""
    row = {"key_id": key_id, "protocol": protocol, "model": model, "source": source, "reason": reason}
    try:
        with db.write() as conn:
            conn.execute(insert(refusals).values(created_at=time.time(), prompt=prompt[:PROMPT_CHARS], **row))
    except SQLAlchemyError as exc:
        log.error("refusal not recorded (database): %s", exc.__class__.__name__)
        return False
    return True


def recent(db: Database, limit: int = 50, key_id: int | None = None) -> list[Refusal]:
    """The newest first."""
    query = select(refusals).order_by(refusals.c.id.desc()).limit(limit)
    if key_id is not None:
        query = query.where(refusals.c.key_id == key_id)
    with db.read() as conn:
        return [Refusal(**row._mapping) for row in conn.execute(query)]


def counts(db: Database) -> dict[tuple[str, str], int]:
    """(protocol, source) → refusals so far."""
    query = select(refusals.c.protocol, refusals.c.source, func.count()).group_by(
        refusals.c.protocol, refusals.c.source
    )
    with db.read() as conn:
        return {(protocol, source): count for protocol, source, count in conn.execute(query)}

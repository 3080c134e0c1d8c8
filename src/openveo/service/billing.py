"""The credit ledger. Every change of a balance is one appended ledger row and one conditional update
of `api_keys.balance` in the caller's transaction, so the two always agree and a balance can never
go below zero (the update only matches while the money is there, on SQLite and PostgreSQL alike).

A job's cost is reserved when it is queued, then either charged (success) or refunded (failure,
cancel, expiry); `jobs.billing` moves from `reserved` exactly once, which is what stops a job from
being charged twice or refunded twice.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, select, update

from openveo.core.catalog import Preset
from openveo.core.job import Billing, Settlement
from openveo.core.request import GenerationRequest
from openveo.store.schema import api_keys, jobs, ledger

MICRO = 1_000_000  # credits are stored as integer micro-credits


class InsufficientCredits(Exception):
    def __init__(self, balance: int, needed: int) -> None:
        self.balance = balance
        self.needed = needed
        super().__init__(
            f"insufficient credits: this request costs {credits_text(needed)}, "
            f"the balance is {credits_text(balance)}"
        )


def to_micro(credits: float) -> int:
    return round(credits * MICRO)


def to_credits(micro: int) -> float:
    return round(micro / MICRO, 6)


def credits_text(micro: int) -> str:
    """Credits as people write them: "0.95", "100", "1234567.5" (never exponent notation)."""
    return f"{micro / MICRO:.6f}".rstrip("0").rstrip(".")


def price(preset: Preset, request: GenerationRequest, lora_price_per_second: float = 0.0) -> int:
    """What a request costs, in micro-credits: the preset's price per second of video made, plus the
    operator's surcharge per second for each LoRA adapter it applies."""
    per_second = preset.price_per_second + lora_price_per_second * len(request.loras)
    return to_micro(per_second * request.duration_s * request.num_videos)


def balance(conn: Connection, key_id: int) -> int:
    value: int = conn.execute(select(api_keys.c.balance).where(api_keys.c.id == key_id)).scalar_one()
    return value


def ledger_sum(conn: Connection, key_id: int) -> int:
    total = conn.execute(select(func.sum(ledger.c.amount)).where(ledger.c.key_id == key_id)).scalar()
    return int(total or 0)


def grant(conn: Connection, key_id: int, amount: int, note: str | None = None) -> int:
    """Add (or with a negative amount, take away) credits; never below zero."""
    return _post(conn, key_id, None, "grant", amount, note)


def reserve(conn: Connection, key_id: int, job_id: str, amount: int) -> int:
    return _post(conn, key_id, job_id, "reserve", -amount, None)


def settle(conn: Connection, job_id: str, outcome: Settlement) -> bool:
    """Close a job's reservation: a charge keeps the money, a refund gives it back. False if done before."""
    new_state = Billing.CHARGED if outcome == Settlement.CHARGE else Billing.REFUNDED
    moved = conn.execute(
        update(jobs).where(jobs.c.id == job_id, jobs.c.billing == Billing.RESERVED).values(billing=new_state)
    ).rowcount
    if not moved:
        return False
    key_id, cost = conn.execute(select(jobs.c.key_id, jobs.c.cost).where(jobs.c.id == job_id)).one()
    _post(conn, key_id, job_id, outcome, cost if outcome == Settlement.REFUND else 0, None)
    return True


def _post(conn: Connection, key_id: int, job_id: str | None, kind: str, amount: int, note: str | None) -> int:
    new_balance: int | None = conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.balance + amount >= 0)
        .values(balance=api_keys.c.balance + amount)
        .returning(api_keys.c.balance)
    ).scalar()
    if new_balance is None:
        raise InsufficientCredits(balance(conn, key_id), -amount)
    conn.execute(
        ledger.insert().values(
            key_id=key_id,
            job_id=job_id,
            kind=kind,
            amount=amount,
            balance_after=new_balance,
            note=note,
            created_at=time.time(),
        )
    )
    return new_balance

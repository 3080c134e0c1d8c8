"""Keys and the credit ledger on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from openveo.core.job import Settlement
from openveo.core.request import GenerationRequest
from openveo.service import billing, keys
from openveo.service.billing import InsufficientCredits, to_micro
from openveo.service.jobs import Jobs
from openveo.store.schema import ledger

REQUEST = GenerationRequest(prompt="a red panda", model="tiny-wan2.2", seed=1)


def ledger_rows(db, key_id):
    with db.read() as conn:
        return conn.execute(ledger.select().where(ledger.c.key_id == key_id).order_by(ledger.c.id)).all()


def assert_books_balance(db, key_id):
    with db.read() as conn:
        assert billing.balance(conn, key_id) == billing.ledger_sum(conn, key_id)


def test_a_key_is_stored_only_as_a_hash(database):
    key, secret = keys.create_key(database, "alice", 2.5)
    assert secret.startswith("ov-") and len(secret) > 40
    assert keys.authenticate(database, secret).id == key.id
    assert keys.authenticate(database, secret + "x") is None
    with database.read() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash, prefix FROM api_keys").one()
    assert secret not in stored.key_hash and stored.key_hash == keys.hash_secret(secret)
    assert key.credits == 2.5


def test_revoked_keys_are_found_but_marked(database):
    key, secret = keys.create_key(database, "bob", 1)
    keys.revoke_key(database, str(key.id))
    assert keys.authenticate(database, secret).revoked_at is not None


def test_find_key_refuses_ambiguity(database):
    keys.create_key(database, "same", 1)
    keys.create_key(database, "same", 1)
    with pytest.raises(keys.KeyNotFound, match="2 keys match"):
        keys.show_key(database, "same")


def test_balance_never_goes_negative(database):
    key, _ = keys.create_key(database, "carol", 1)
    with pytest.raises(InsufficientCredits):
        keys.add_credits(database, str(key.id), -1.5)
    assert keys.show_key(database, str(key.id)).credits == 1
    assert_books_balance(database, key.id)


def test_charge_and_refund_happen_once(database):
    key, _ = keys.create_key(database, "dave", 1)
    jobs = Jobs(database)
    job = jobs.submit(key, REQUEST, protocol="test")
    assert job.cost == to_micro(0.05)  # priced from the catalog: tiny-wan2.2, 0.01 a second, 5 s
    with database.write() as conn:
        assert billing.settle(conn, job.id, Settlement.CHARGE)
        assert not billing.settle(conn, job.id, Settlement.CHARGE)
        assert not billing.settle(conn, job.id, Settlement.REFUND)
    assert jobs.balance(key.id) == to_micro(0.95)
    assert [r.kind for r in ledger_rows(database, key.id)] == ["grant", "reserve", "charge"]
    assert_books_balance(database, key.id)


def test_concurrent_submits_never_overspend(database):
    """20 submits at once from a key with credits for 10: exactly 10 are queued."""
    key, _ = keys.create_key(database, "erin", 0.5)  # each job costs 0.05
    jobs = Jobs(database)

    def submit(_):
        try:
            return jobs.submit(key, REQUEST, protocol="test").id
        except InsufficientCredits:
            return None

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(submit, range(20)))
    accepted = [r for r in results if r]
    assert len(accepted) == 10
    assert jobs.balance(key.id) == 0
    assert_books_balance(database, key.id)
    reserves = [r for r in ledger_rows(database, key.id) if r.kind == "reserve"]
    assert sorted(r.job_id for r in reserves) == sorted(accepted)

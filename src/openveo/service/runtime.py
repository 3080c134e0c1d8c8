"""Wires the torch-free parts together from one Settings: database, job service, result files, wake-ups.
The API server and every worker build theirs here, so they agree on where everything lives."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from openveo.config import Settings
from openveo.core.catalog import Catalog
from openveo.service.jobs import Jobs, JobSignals, QueuePolicy
from openveo.service.links import Signer, load_secret
from openveo.service.loras import LoraRegistry
from openveo.service.outbound import Outbound, outbound_from_settings
from openveo.store.blobs import Blobs, open_blobs
from openveo.store.db import Database
from openveo.store.wakeups import Wakeups


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    db: Database
    jobs: Jobs
    blobs: Blobs
    signer: Signer
    secret: bytes  # the server's own; signs result links and derives each key's webhook secret
    wakeups: Wakeups
    outbound: Outbound  # every request to a URL a client or operator gave
    loras: LoraRegistry  # the adapters requests may name

    def close(self) -> None:
        self.db.dispose()


def result_store(settings: Settings, check: bool = True) -> Blobs:
    """The configured result store; checked (`StorageUnavailable` with the reason) unless told not
    to, for a caller that may never touch it."""
    blobs = open_blobs(
        settings.storage, settings.data_dir / "results", s3_endpoint_url=settings.s3_endpoint_url
    )
    if check:
        blobs.check()
    return blobs


def open_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    if migrate:
        db.upgrade()
    wakeups = Wakeups(db, settings.data_dir)
    secret = load_secret(db, settings.data_dir)
    policy = QueuePolicy(
        lease_s=settings.lease_s,
        max_attempts=settings.max_attempts,
        retention_s=settings.retention_s,
        queue_timeout_s=settings.queue_timeout_s,
    )
    signals = JobSignals(queued=partial(wakeups.ring, "worker"), changed=partial(wakeups.ring, "api"))
    catalog = settings.catalog()
    blobs = result_store(settings)
    return Runtime(
        settings=settings,
        catalog=catalog,
        db=db,
        jobs=Jobs(db, policy, signals, catalog, settings.lora_price_per_second),
        blobs=blobs,
        signer=Signer(secret),
        secret=secret,
        wakeups=wakeups,
        outbound=outbound_from_settings(settings),
        loras=LoraRegistry(db, blobs, catalog, settings.staging_dir),
    )

"""The operator's commands on a deployment's database: keys, credits, refused prompts, status, and
migrations. They need no GPU and no torch."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from openveo.cli.options import DatabaseUrl, DataDir, database, err, fail, out, settings_from, when

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
credits_app = typer.Typer(help="Add credits to a key and show its balance.", no_args_is_help=True)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    credits: Annotated[float, typer.Option(min=0, help="Starting balance.")] = 0.0,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Make a key. Its secret is printed once, as the last line of stdout; only a hash is stored."""
    from openveo.service.billing import credits_text
    from openveo.service.keys import create_key

    key, secret = create_key(database(settings_from(data_dir, database_url=database_url)), name, credits)
    err.print(
        f"key {key.id} ({key.name}) with {credits_text(key.balance)} credits; store the secret now:",
        highlight=False,
    )
    out.print(secret, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Every key: id, name, prefix, balance, created, revoked."""
    from openveo.service.billing import credits_text
    from openveo.service.keys import list_keys

    table = Table("id", "name", "prefix", "credits", "created", "status")
    for key in list_keys(database(settings_from(data_dir, database_url=database_url))):
        status = "revoked " + when(key.revoked_at) if key.revoked_at else "active"
        table.add_row(
            str(key.id), key.name, key.prefix + "…", credits_text(key.balance), when(key.created_at), status
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key itself, its id or its prefix.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Revoke a key: it is refused from now on. Its history stays."""
    from openveo.service.keys import KeyNotFound, revoke_key

    try:
        revoked = revoke_key(database(settings_from(data_dir, database_url=database_url)), key)
    except KeyNotFound as exc:
        raise fail(str(exc)) from None
    out.print(f"revoked key {revoked.id} ({revoked.name})", highlight=False)


@credits_app.command("add")
def credits_add(
    key: Annotated[str, typer.Argument(help="The key itself, its id or its prefix.")],
    amount: Annotated[
        float,
        typer.Argument(help="Credits to add; to take some away: `credits add KEY -- -5` (never below 0)."),
    ],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Add credits to a key; prints the new balance."""
    from openveo.service.billing import InsufficientCredits, credits_text
    from openveo.service.keys import KeyNotFound, add_credits

    try:
        updated = add_credits(database(settings_from(data_dir, database_url=database_url)), key, amount)
    except (KeyNotFound, InsufficientCredits) as exc:
        raise fail(str(exc)) from None
    out.print(credits_text(updated.balance), highlight=False)


@credits_app.command("show")
def credits_show(
    key: Annotated[str, typer.Argument(help="The key itself, its id or its prefix.")],
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Print a key's balance."""
    from openveo.service.billing import credits_text
    from openveo.service.keys import KeyNotFound, show_key

    try:
        shown = show_key(database(settings_from(data_dir, database_url=database_url)), key)
    except KeyNotFound as exc:
        raise fail(str(exc)) from None
    out.print(credits_text(shown.balance), highlight=False)


def refusals(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    key: Annotated[int | None, typer.Option(help="Only this key's (its id).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as a JSON array.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Prompts the content policy refused, on every API server of the deployment: when, which key,
    protocol and model, which rule (terms, patterns, people, moderation), why, and the prompt."""
    import dataclasses
    import json

    from openveo.service.refusals import recent

    found = recent(database(settings_from(data_dir, database_url=database_url)), limit=limit, key_id=key)
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(refusal) for refusal in found]))
        return
    table = Table("when", "key", "protocol", "model", "rule", "reason", "prompt")
    for refusal in found:
        table.add_row(
            when(refusal.created_at),
            str(refusal.key_id),
            refusal.protocol,
            refusal.model,
            refusal.source,
            refusal.reason,
            refusal.prompt[:80],
        )
    out.print(table)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Workers (live or gone), queued jobs per model, and recent failures."""
    import json

    from openveo.service.workers import WorkerRegistry

    report = WorkerRegistry(database(settings_from(data_dir, database_url=database_url))).status()
    if as_json:
        out.print_json(json.dumps(report.as_json()))
        return
    now = time.time()
    table = Table("worker", "models", "device", "state", "job", "last beat", title="Workers")
    for worker in report.workers:
        state = worker.state if worker.live else f"gone ({worker.state})"
        table.add_row(
            worker.id,
            ", ".join(worker.models),
            worker.device,
            state,
            worker.current_job or "",
            f"{now - worker.heartbeat_at:.0f} s ago",
        )
    out.print(table)
    queue = Table("model", "queued", title="Queue")
    for model, count in sorted(report.queue.items()):
        note = "  (no live worker serves it)" if model in report.waiting_without_worker else ""
        queue.add_row(model, f"{count}{note}")
    out.print(queue)
    failures = Table("job", "model", "error", "when", title="Recent failures")
    for failure in report.recent_failures:
        failures.add_row(failure.id, failure.model, failure.error or "", when(failure.finished_at))
    out.print(failures)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None, data_dir: DataDir = None) -> None:
    """Apply migrations up to the newest (serve and worker do this at start too)."""
    settings = settings_from(data_dir, database_url=database_url)
    database(settings).dispose()
    out.print(f"database at {settings.db_url} is up to date", highlight=False)

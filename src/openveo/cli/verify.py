"""`openveo verify`: was this video made by this deployment? The report `POST /v1/verify` gives too,
read as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from openveo.cli.options import DatabaseUrl, DataDir, database, fail, out, settings_from, when


def verify(
    file: Annotated[Path, typer.Argument(help="The video to check (MP4 or anything FFmpeg reads).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Was this video made by this openveo deployment? Checks its signed C2PA manifest and looks for
    the invisible watermark (which survives re-encoding, downscaling and cropping, where the manifest
    does not). Exit status: 0 made by openveo, 1 no sign of openveo, 2 not readable."""
    import json

    from openveo.provenance.verify import NotAVideo
    from openveo.service.jobs import Jobs
    from openveo.service.links import load_secret
    from openveo.service.provenance import open_verifier, stored_original
    from openveo.service.runtime import result_store

    if not file.is_file():
        raise fail(f"no such file: {file}")
    settings = settings_from(data_dir, database_url=database_url)
    db = database(settings)
    jobs = Jobs(db)

    def find_job(prefix: str) -> dict[str, Any] | None:
        job = jobs.by_prefix(prefix)
        if job is None:
            return None
        return {
            "id": job.id,
            "key_id": job.key_id,
            "model": job.model,
            "created": when(job.created_at),
        }

    original = stored_original(jobs, result_store(settings, check=False))  # read only if needed
    try:
        verifier = open_verifier(settings, db, load_secret(db, settings.data_dir), find_job, original)
        report = verifier.verify(file)
    except NotAVideo as exc:
        raise fail(str(exc)) from None
    finally:
        db.dispose()
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(report_table(report))
    raise typer.Exit(0 if report["made_by_openveo"] else 1)


def report_table(report: dict[str, Any]) -> Table:
    manifest, mark = report["manifest"], report["watermark"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("file", report["file"])
    if not manifest["present"]:
        table.add_row("manifest", "none (no C2PA manifest; re-encoding or editing removes it)")
    else:
        table.add_row("manifest", _manifest_facts(manifest))
        for problem in manifest["problems"]:
            table.add_row("", f"problem: {problem}")
    if mark["found"] and mark["payload"] is None:
        table.add_row("watermark", "found, but too damaged to read whose it is")
    elif mark["found"]:
        where = "this deployment" if mark["this_deployment"] else f"another deployment ({mark['server']})"
        job = mark.get("job")
        found = f"found: {where}, job {job['id'] if job else mark['job_id_prefix'] + '...'}"
        if job:
            found += f" (key {job['key_id']}, {job['model']}, {job['created']})"
        table.add_row("watermark", found)
    else:
        table.add_row("watermark", "not found")
    table.add_row("", f"confidence {mark['confidence']:.3f}, p-value {mark['p_value']:.2g}")
    if recovered := report.get("recovered_manifest"):
        binding = (
            "its soft binding names this watermark" if recovered["binds_this_video"] else "NOT bound to it"
        )
        table.add_row("original", f"the job's stored video: {_manifest_facts(recovered)}; {binding}")
    table.add_row("verdict", "made by openveo" if report["made_by_openveo"] else "no sign of openveo")
    return table


def _manifest_facts(manifest: dict[str, Any]) -> str:
    trust = (
        "trusted"
        if manifest["trusted"]
        else "valid, signer not trusted here"
        if manifest["valid"]
        else "INVALID"
    )
    facts = [trust, f"signed by {manifest['signer']} ({manifest['issuer']})"]
    if manifest["ai_generated"]:
        facts.append("AI-generated (trainedAlgorithmicMedia)")
    if generation := manifest["generation"]:
        facts.append(f"model {generation.get('model')}, job {generation.get('job_id')}")
    return "; ".join(facts)

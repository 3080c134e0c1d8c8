"""`openveo verify`'s report, read as a table: what a user sees for each kind of finding."""

from __future__ import annotations


def test_the_verify_report_reads_for_a_damaged_mark_and_a_recovered_manifest():
    from rich.console import Console

    from openveo.cli.verify import report_table

    manifest = {
        "present": True, "valid": True, "trusted": True, "signer": "openveo on gpu-3", "issuer": "openveo",
        "ai_generated": True, "generation": {"model": "tiny-wan2.2", "job_id": "9c1f"}, "problems": [],
    }  # fmt: skip
    report = {
        "file": "copy.mp4",
        "manifest": {"present": False},
        "watermark": {"found": True, "payload": None, "confidence": 0.71, "p_value": 3e-9},
        "recovered_manifest": {**manifest, "binds_this_video": False},
        "made_by_openveo": True,
    }
    console = Console(width=200, record=True)
    console.print(report_table(report))
    text = console.export_text()
    assert "found, but too damaged to read whose it is" in text
    assert "the job's stored video: trusted" in text and "NOT bound to it" in text
    assert "made by openveo" in text

"""C2PA Content Credentials: made keys, operator keys, trust, tampering; read back with the C2PA SDK."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from openveo.engine.video import write_mp4
from openveo.provenance.manifest import load_credentials, read_manifest, sign_mp4


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> Path:
    frames = np.random.default_rng(0).integers(0, 255, (9, 64, 96, 3), dtype=np.uint8)
    return write_mp4(frames, tmp_path_factory.mktemp("video") / "v.mp4", 8)


def signed_copy(mp4: Path, folder: Path, credentials) -> Path:
    path = folder / "signed.mp4"
    shutil.copy(mp4, path)
    sign_mp4(
        path,
        credentials,
        model="tiny-ltx",
        seed=7,
        job_id="ab" * 16,
        server="beef",
        watermark=0xBEEF << 48 | 0xABAB,
    )
    return path


def test_a_made_signer_is_trusted_by_its_root_and_only_valid_elsewhere(mp4, tmp_path):
    ours = load_credentials(tmp_path / "ours")
    path = signed_copy(mp4, tmp_path, ours)
    report = read_manifest(path, ours.own_root_pem)
    assert report.present and report.valid and report.trusted and report.state == "Trusted"
    assert report.ai_generated and report.generator.startswith("openveo")
    assert report.generation == {
        "service": "openveo", "server": "beef", "model": "tiny-ltx", "seed": 7, "job_id": "ab" * 16
    }  # fmt: skip
    assert report.signer.startswith("openveo on ") and report.issuer == "openveo"
    assert report.soft_binding == "beef00000000abab"  # the watermark's payload, declared
    assert (tmp_path / "ours" / "c2pa" / "signer.key").stat().st_mode & 0o077 == 0

    theirs = load_credentials(tmp_path / "theirs")
    elsewhere = read_manifest(path, theirs.own_root_pem)
    assert elsewhere.valid and not elsewhere.trusted
    assert not read_manifest(mp4).present  # the unsigned original


def test_a_changed_byte_breaks_the_manifest(mp4, tmp_path):
    ours = load_credentials(tmp_path / "ours")
    data = bytearray(signed_copy(mp4, tmp_path, ours).read_bytes())
    data[-300] ^= 0x01
    (tmp_path / "tampered.mp4").write_bytes(data)
    report = read_manifest(tmp_path / "tampered.mp4", ours.own_root_pem)
    assert report.present and not report.valid and report.state == "Invalid"
    assert any("mismatch" in problem for problem in report.problems)


def test_workers_starting_together_agree_on_one_signer(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: load_credentials(tmp_path), range(4)))
    assert len({c.key_pem for c in made}) == 1 and len({c.own_root_pem for c in made}) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c2pa"]  # no half-made folders left


def test_the_operator_s_own_certificate(mp4, tmp_path):
    made = load_credentials(tmp_path / "ca")  # stands in for a CA-issued chain
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.write_bytes(made.chain_pem)
    key.write_bytes(made.key_pem)
    operator = load_credentials(tmp_path / "data", cert, key)
    assert operator.own_root_pem is None and not (tmp_path / "data" / "c2pa").exists()
    assert read_manifest(signed_copy(mp4, tmp_path, operator), made.own_root_pem).trusted

    with pytest.raises(ValueError, match="set both or neither"):
        load_credentials(tmp_path / "data", cert, None)
    mismatched = tmp_path / "other.pem"
    other = ed25519.Ed25519PrivateKey.generate()
    mismatched.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(Exception):  # noqa: B017 - the C2PA SDK refuses a key that is not the cert's
        signed_copy(mp4, tmp_path, load_credentials(tmp_path / "data", cert, mismatched))
    assert not list(tmp_path.glob(".signed.mp4.*"))  # no half-signed file left behind

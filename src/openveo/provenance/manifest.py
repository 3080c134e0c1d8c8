"""C2PA Content Credentials: a signed manifest inside every MP4 saying it is AI-generated
(`trainedAlgorithmicMedia`), by which model and which service; and reading one back.

The signing key and certificate are the operator's (`OPENVEO_C2PA_CERT` / `OPENVEO_C2PA_KEY`) or, by
default, made in `DATA_DIR/c2pa/` on first start: a root certificate that signs a signing
certificate, whose key stays on this machine (the root's key is thrown away once it has signed).
Each such root is published in the deployment's database, and verifiers trust those roots plus any
the operator lists, so `openveo verify` tells this deployment's videos ("trusted") from validly
signed videos of anyone else ("valid").
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from openveo import __version__

AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.openveo.generation"
# The watermark, declared as the manifest's soft binding: a copy that lost its manifest (re-encoded)
# still carries the payload, and the payload finds the job and so the original's manifest. A private
# algorithm name: openveo's watermark is not in C2PA's soft-binding algorithm list.
SOFT_BINDING_LABEL, SOFT_BINDING_ALG = "c2pa.soft-binding", "org.openveo.watermark.1"
CERT_DAYS = 10 * 365


@dataclass(frozen=True)
class Credentials:
    chain_pem: bytes  # the signing certificate first, then its issuers
    key_pem: bytes
    own_root_pem: bytes | None  # the root made in the data dir; None for the operator's certificate

    def signer(self) -> c2pa.Signer:
        return c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(_algorithm(self.key_pem), self.chain_pem, self.key_pem, None)
        )


def load_credentials(data_dir: Path, cert: Path | None = None, key: Path | None = None) -> Credentials:
    """The operator's certificate and key if given, else this data dir's own (made when missing)."""
    if (cert is None) != (key is None):
        raise ValueError("OPENVEO_C2PA_CERT and OPENVEO_C2PA_KEY go together: set both or neither")
    if cert is not None and key is not None:
        return Credentials(cert.read_bytes(), key.read_bytes(), None)
    own = data_dir / "c2pa"
    if not (own / "signer.key").exists():
        _create(own)
    return Credentials(
        (own / "signer.pem").read_bytes(), (own / "signer.key").read_bytes(), (own / "root.pem").read_bytes()
    )


def _create(folder: Path) -> None:
    """A root and a signing certificate, written whole: built in a temporary folder that is renamed
    into place, so workers starting together agree on one (the first rename wins)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
    try:
        now = datetime.datetime.now(datetime.UTC)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name("openveo root")
        root = (
            _certificate(root_name, root_name, root_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            _certificate(_name(f"openveo on {socket.gethostname()}"), root_name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        (staging / "root.pem").write_bytes(root.public_bytes(pem))
        (staging / "signer.pem").write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
        key_file = staging / "signer.key"
        key_file.touch(mode=0o600)
        key_file.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        with contextlib.suppress(OSError):  # another process made it first: use theirs
            os.rename(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "openveo"),
        ]
    )


def _certificate(subject, issuer, public_key, now) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _algorithm(key_pem: bytes) -> c2pa.C2paSigningAlg:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_size = {256: c2pa.C2paSigningAlg.ES256, 384: c2pa.C2paSigningAlg.ES384}
        return by_size.get(key.curve.key_size, c2pa.C2paSigningAlg.ES512)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    if isinstance(key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    raise ValueError(f"C2PA cannot sign with a {type(key).__name__}; use an EC, Ed25519 or RSA key")


def sign_mp4(
    path: Path,
    credentials: Credentials,
    *,
    model: str,
    seed: int,
    job_id: str | None,
    server: str,
    watermark: int | None = None,
    loras: list[dict[str, Any]] | None = None,
) -> None:
    """Embed the manifest into the MP4 at `path`, replacing it whole (never a half-signed file);
    `watermark` is the payload the frames carry, declared as the soft binding; `loras` the adapters
    the model ran with (name, sha256 of the file, scale)."""
    generation = {"service": "openveo", "server": server, "model": model, "seed": seed, "job_id": job_id}
    if loras:
        generation["loras"] = loras
    manifest: dict[str, Any] = {
        "claim_generator_info": [{"name": "openveo", "version": __version__}],
        "title": path.name,
        "format": "video/mp4",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": AI_GENERATED,
                            "softwareAgent": {"name": "openveo", "version": __version__},
                            "parameters": {"model": model},
                        }
                    ]
                },
            },
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }
    if watermark is not None:
        block = {"scope": {}, "value": f"{watermark:016x}"}
        manifest["assertions"].append(
            {"label": SOFT_BINDING_LABEL, "data": {"alg": SOFT_BINDING_ALG, "blocks": [block]}}
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".c2pa", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # the signer writes the file itself
    try:
        with c2pa.Builder(manifest) as builder, credentials.signer() as signer:
            builder.sign_file(path, tmp, signer)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@dataclass(frozen=True)
class ManifestReport:
    present: bool
    valid: bool = False  # the signature and the file's hashes check out
    trusted: bool = False  # ...and the signer chains to a trusted root (this deployment's, or listed)
    state: str | None = None  # c2pa's own word: Invalid, Valid or Trusted
    signer: str | None = None  # the signing certificate's common name
    issuer: str | None = None  # its organisation
    generator: str | None = None
    ai_generated: bool = False
    generation: dict[str, Any] = field(default_factory=dict)  # openveo's own assertion, when present
    soft_binding: str | None = None  # the watermark payload (hex) the manifest declares, when present
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def read_manifest(path: Path, anchors: bytes = b"") -> ManifestReport:
    """What the file's manifest says and whether it holds; no manifest is a report, not an error."""
    settings: dict[str, Any] = {"verify": {"verify_trust": bool(anchors)}}
    if anchors:
        settings["trust"] = {"trust_anchors": anchors.decode()}
    try:
        with c2pa.Context.from_dict(settings) as context, c2pa.Reader(path, context=context) as reader:
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
            active = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc) or "not found" in str(exc):
            return ManifestReport(present=False)
        return ManifestReport(present=True, state="Invalid", problems=[f"unreadable manifest: {exc}"])
    failures = (results.get("activeManifest") or {}).get("failure") or []
    problems = [f"{item.get('code')}: {item.get('explanation')}" for item in failures]
    signature = active.get("signature_info") or {}
    assertions = {item.get("label"): item.get("data") for item in active.get("assertions") or []}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions") or []
    generator: dict[str, Any] = next(iter(active.get("claim_generator_info") or []), {})
    hard = [p for p in problems if not p.startswith("signingCredential.untrusted")]
    return ManifestReport(
        present=True,
        valid=state in ("Valid", "Trusted") or (state == "Invalid" and not hard and bool(problems)),
        trusted=state == "Trusted",
        state=state,
        signer=signature.get("common_name"),
        issuer=signature.get("issuer"),
        generator=" ".join(str(generator.get(k)) for k in ("name", "version") if generator.get(k)) or None,
        ai_generated=any(a.get("digitalSourceType") == AI_GENERATED for a in actions),
        generation=assertions.get(GENERATION_LABEL) or {},
        soft_binding=_soft_binding(assertions.get(SOFT_BINDING_LABEL)),
        problems=problems,
    )


def _soft_binding(assertion: Any) -> str | None:
    if not isinstance(assertion, dict) or assertion.get("alg") != SOFT_BINDING_ALG:
        return None
    blocks = assertion.get("blocks") or [{}]
    return blocks[0].get("value") if isinstance(blocks[0], dict) else None

"""One signing secret per deployment, kept in the database, so every API server and worker on it signs
links and webhook secrets alike, whatever its data dir."""

from __future__ import annotations

from openveo.service.links import Signer, load_secret


def test_every_process_on_one_database_gets_the_same_secret(database, tmp_path):
    first = load_secret(database, tmp_path / "host-a")
    second = load_secret(database, tmp_path / "host-b")
    assert first == second and len(first) == 32
    link = Signer(first).query("jobs/x/video-0.mp4", 4_000_000_000)
    expires, signature = (part.split("=", 1)[1] for part in link.split("&"))
    assert Signer(second).valid("jobs/x/video-0.mp4", expires, signature)


def test_an_older_data_dir_s_secret_is_adopted(database, tmp_path):
    legacy = "ab" * 32
    (tmp_path / "secret.key").write_text(legacy + "\n")
    assert load_secret(database, tmp_path) == bytes.fromhex(legacy)  # links already handed out stay valid
    (tmp_path / "secret.key").write_text("cd" * 32)
    assert load_secret(database, tmp_path) == bytes.fromhex(legacy)  # the database's copy wins from now on

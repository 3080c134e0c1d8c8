"""The `openveo` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import decode, png_bytes, run_cli

pytestmark = pytest.mark.slow  # each test starts the real command in a process of its own


@pytest.fixture()
def env(models_root, tmp_path):
    return {"OPENVEO_DATA_DIR": str(tmp_path / "data"), "OPENVEO_MODELS_DIR": str(models_root)}


def test_generate_offline_through_from_pretrained(env, tmp_path):
    out = tmp_path / "panda.mp4"
    result = run_cli(
        "generate",
        "a red panda riding a skateboard",
        "--model",
        "tiny",
        "--duration",
        "5",
        "--aspect-ratio",
        "9:16",
        "--seed",
        "965002",
        "-o",
        str(out),
        "--thumbnail",
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(out)
    video = decode(out)
    assert (video["width"], video["height"], len(video["frames"])) == (96, 160, 41)
    assert out.with_suffix(".jpg").exists()
    for stage in (
        "seed",
        "965002",
        "text encoding",
        "denoising",
        "vae decode",
        "video encode",
        "41 at 8 fps",
    ):
        assert stage in result.stderr
    assert "tiny random-weight test model" in result.stderr


def test_random_seed_is_reported(env, tmp_path):
    result = run_cli("generate", "waves", "--model", "tiny-ltx", "--seed", "-1", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    produced = [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
    assert len(produced) == 1
    seed = produced[0].stem.removeprefix("openveo-")
    assert f"{seed} (random)" in result.stderr
    assert decode(produced[0])["metadata"]["openveo_seed"] == seed


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--duration", "3"], "--duration must be one of 4, 5, 6, 7, 8 seconds; got 3"),
        (["--duration", "9"], "--duration must be one of 4, 5, 6, 7, 8 seconds; got 9"),
        (["--duration", "abc"], "--duration must be an integer; got 'abc'"),
        (["--aspect-ratio", "4:3"], "--aspect-ratio must be one of 16:9, 9:16, 1:1; got '4:3'"),
        (["--num-videos", "5"], "--num-videos must be from 1 to 4; got 5"),
        (["--model", "veo-9"], "--model must be one of:"),
        (["--model", "tiny-wan2.1", "--image", "IMAGE"], "--image is not supported by tiny-wan2.1"),
        (["--image", "NOTIMAGE"], "--image is not a readable image"),
        (["--image", "MISSING"], "--image cannot be read"),
    ],
)
def test_bad_arguments_fail_clearly_and_write_nothing(env, tmp_path, args, expected):
    (tmp_path / "in.png").write_bytes(png_bytes())
    (tmp_path / "not.png").write_text("hello")
    swap = {
        "IMAGE": str(tmp_path / "in.png"),
        "NOTIMAGE": str(tmp_path / "not.png"),
        "MISSING": str(tmp_path / "x.png"),
    }
    out = tmp_path / "out.mp4"
    result = run_cli(
        "generate", "a cat", "--model", "tiny", *[swap.get(a, a) for a in args], "-o", str(out), env=env
    )
    assert result.returncode != 0
    assert expected in " ".join(result.stderr.split())
    assert not out.exists()


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt(env, tmp_path, prompt):
    result = run_cli("generate", prompt, "--model", "tiny", "-o", str(tmp_path / "o.mp4"), env=env)
    assert result.returncode != 0 and "PROMPT must be a non-empty string" in result.stderr


def test_overlong_prompt(env, tmp_path):
    result = run_cli("generate", "x" * 101, "--model", "tiny", env={**env, "OPENVEO_MAX_PROMPT_CHARS": "100"})
    assert result.returncode != 0 and "PROMPT must be at most 100 characters" in result.stderr


def test_missing_real_weights_say_how_to_get_them(tmp_path):
    empty = {
        "OPENVEO_DATA_DIR": str(tmp_path / "data"),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
    }
    result = run_cli(
        "generate", "a cat", "--model", "wan2.1-t2v-1.3b", "-o", str(tmp_path / "o.mp4"), env=empty
    )
    assert result.returncode == 3
    message = " ".join(result.stderr.split())
    assert "openveo models download wan2.1-t2v-1.3b" in message
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in message and str(tmp_path / "data" / "models") in message
    assert not (tmp_path / "o.mp4").exists()


def test_models_list(env, tmp_path):
    result = run_cli("models", "list", env={**env, "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    for name in (
        "wan2.1-t2v-1.3b",
        "wan2.1-t2v-14b",
        "wan2.2-ti2v-5b",
        "wan2.2-t2v-a14b",
        "ltx-video",
        "tiny-ltx",
    ):
        assert name in result.stdout
    assert (
        "1280x704" in result.stdout
        and "missing" in result.stdout
        and "veo-2 → wan2.2-ti2v-5b" in result.stdout
    )


def test_help_explains_itself():
    result = run_cli("generate", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0 and "--aspect-ratio" in result.stdout and "--seed" in result.stdout


def test_keys_and_credits_commands(env):
    created = run_cli("keys", "create", "--name", "alice", "--credits", "2.5", env=env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("ov-")
    assert "alice" in created.stderr and "2.5" in created.stderr

    listed = run_cli("keys", "list", env={**env, "COLUMNS": "200"})
    assert "alice" in listed.stdout and "active" in listed.stdout and secret not in listed.stdout

    assert run_cli("credits", "add", secret, "1.25", env=env).stdout.strip() == "3.75"
    assert run_cli("credits", "show", secret[:10], env=env).stdout.strip() == "3.75"
    too_much = run_cli("credits", "add", "1", "--", "-10", env=env)
    assert too_much.returncode != 0 and "insufficient credits" in too_much.stderr
    assert run_cli("credits", "show", "1", env=env).stdout.strip() == "3.75"

    assert run_cli("keys", "revoke", secret, env=env).returncode == 0
    assert "revoked" in run_cli("keys", "list", env={**env, "COLUMNS": "200"}).stdout
    unknown = run_cli("credits", "show", "ov-nope", env=env)
    assert unknown.returncode != 0 and "no key matches" in unknown.stderr


def test_serve_and_worker_help_explain_themselves():
    for command in ("serve", "worker"):
        result = run_cli(command, "--help", env={"COLUMNS": "200"})
        assert result.returncode == 0 and "--model" in result.stdout and "--data-dir" in result.stdout


def test_generate_from_a_folder_that_shadows_the_standard_library(env, tmp_path):
    """A `types.py` of the user's own in the working directory must not break the MP4 encoder (its
    child process starts with Python's safe-path flag)."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "types.py").write_text("# the user's own module; its name is also the standard library's\n")
    openveo = Path(sys.executable).with_name("openveo")  # the installed command, as a user runs it
    result = subprocess.run(
        [str(openveo), "generate", "a kite", "--model", "tiny", "--seed", "3", "-o", "kite.mp4"],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert decode(folder / "kite.mp4")["frames"].shape[0] == 41  # 5 s at the tiny model's 8 fps


def test_edit_a_video_inside_a_mask_and_extend_a_portrait_one(env, tmp_path):
    """--edit with --mask and --mask-mode remakes the mask's white region of a video at its own
    length and size; --extend keeps a portrait source's shape without --aspect-ratio."""
    import numpy as np

    from openveo.engine.video import write_mp4
    from tests.helpers import mask_png

    source = tmp_path / "source.mp4"
    down, across = np.mgrid[0:160, 0:96]
    frame = np.stack([down * 1.5, across * 2.5, np.full_like(down, 90)], axis=-1).astype(np.uint8)
    write_mp4(np.repeat(frame[None], 24, axis=0), source, 8)  # a smooth picture: H.264 keeps it close
    (tmp_path / "mask.png").write_bytes(mask_png(96, 160, (0, 0, 96, 60)))
    edited, extended = tmp_path / "edited.mp4", tmp_path / "extended.mp4"
    common = ("--model", "tiny-wan2.1-vace", "--seed", "1")
    result = run_cli(
        "generate", "a kite in the sky", *common, "--edit", str(source), "--mask", str(tmp_path / "mask.png"),
        "--mask-mode", "insert", "-o", str(edited), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    before, after = decode(source)["frames"], decode(edited)["frames"]
    assert after.shape == before.shape  # 24 frames, 96x160, portrait
    assert np.abs(after[:, 80:].astype(int) - before[:, 80:]).mean() < 4  # the source, with the mark on it
    assert np.abs(after[:, :50].astype(int) - before[:, :50]).mean() > 20  # inside the mask: remade
    result = run_cli("generate", "more sky", *common, "--extend", str(source), "--duration", "2",
                     "-o", str(extended), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert decode(extended)["frames"].shape == (24 + 16, 160, 96, 3)
    result = run_cli("generate", "x", *common, "--edit", str(source), "--mask", str(tmp_path / "mask.png"),
                     "--mask-mode", "remove", "-o", str(tmp_path / "no.mp4"), env=env)  # fmt: skip
    assert result.returncode != 0 and "--mask-mode remove is not served here" in " ".join(
        result.stderr.split()
    )

"""The engine's worker features through the real server: a worker that is a group of two processes
making each video together (CFG-parallel over gloo on the CPU, as GPUs would over NCCL), MP4
encoding that runs beside the next job instead of before it, and a group that loses a process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.server import Server
from tests.helpers import decode, run_cli

PROMPT = "a paper boat on a rainy street"


def _submit(server: Server, key: str, seed: int) -> str:
    created = httpx.post(
        f"{server.url}/v2/veo-2", json={"prompt": PROMPT, "seed": seed}, headers={"x-api-key": key}
    )
    assert created.status_code == 200, created.text
    return created.json()["request_id"]


def _rank(pid: int) -> int:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return int(next(v for v in environ if v.startswith(b"RANK=")).split(b"=", 1)[1])


def _job(server: Server, job_id: str, headers: dict) -> dict:
    return httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=headers).json()


def test_a_two_process_worker_group(tmp_path, tiny_models):
    # Provenance off on both sides: the watermark names the job and the manifest is signed afresh,
    # and this test compares the arithmetic, byte for byte. One CPU thread per process on both sides
    # too: CPU kernels split their sums by thread count, so 1 thread and 2 round differently.
    unmarked = {"OPENVEO_WATERMARK": "false", "OPENVEO_C2PA": "false", "OMP_NUM_THREADS": "1"}
    server = Server(tmp_path / "group", tiny_models, env={"OPENVEO_GPUS_PER_VIDEO": "2", **unmarked})
    with server:
        ranks = server.wait_for_workers(2)
        key = server.new_key(credits=1)
        headers = {"x-api-key": key}
        first, second = _submit(server, key, 11), _submit(server, key, 12)
        for job_id in (first, second):
            assert server.wait_status(key, job_id, {"COMPLETED", "FAILED"}, timeout=240) == "COMPLETED"
        # The second job was claimed while the first one's MP4 was still being encoded and stored.
        assert server.job_row(second).started_at < server.job_row(first).finished_at
        result = httpx.get(f"{server.url}/v2/requests/{first}", headers=headers).json()
        video = httpx.get(result["output"])
        assert video.status_code == 200
        (tmp_path / "group.mp4").write_bytes(video.content)
        assert server.worker_pids() == ranks  # the same two processes all along

        # One process of the group dies mid-video: the leader gives the job back, the supervisor
        # restarts the whole group, and the job runs again, charged once.
        follower = next(pid for pid in ranks if _rank(pid) == 1)
        job = httpx.post(
            f"{server.url}/v1/jobs",
            json={"prompt": PROMPT, "model": "veo-2", "steps": 100, "duration_s": 8},
            headers=headers,
        ).json()
        deadline = time.monotonic() + 120
        while _job(server, job["id"], headers)["step"] < 1:  # early: the tiny model's steps are quick
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.02)
        os.kill(follower, signal.SIGKILL)
        deadline = time.monotonic() + 180
        while (body := _job(server, job["id"], headers))["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert body["status"] == "succeeded", body
        # Given back, not failed: a release does not count as a failed attempt.
        assert "giving the job back" in server.log() and f"job {job['id']}: failed" not in server.log()
        credits = httpx.get(f"{server.url}/v1/get-user-credits", headers=headers).json()["credits"]
        assert round(credits, 6) == round(1 - 2 * 0.05 - 0.08, 6)  # three jobs (5, 5, 8 s), each charged once
        restarted = server.worker_pids()
        assert len(restarted) == 2 and set(restarted).isdisjoint(ranks)  # a whole new group
    for pid in restarted:
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not os.path.exists(f"/proc/{pid}"), "a rank outlived its server"

    # The first video again from one process. CFG-parallel runs the prompt and negative-prompt
    # passes apart, one per rank, which is what one process does with batch_cfg off: the same
    # arithmetic, so the same MP4 to the byte. (Against the batched default the frames differ by
    # float rounding only, but x264 turns such tiny differences in noise-like frames into
    # different encodes.)
    alone = run_cli(
        "generate", PROMPT, "--model", "tiny", "--seed", "11", "--output", str(tmp_path / "alone.mp4"),
        "--data-dir", str(tmp_path / "cli"),
        env={"OPENVEO_MODELS_DIR": str(tiny_models), "OPENVEO_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
             "OPENVEO_BATCH_CFG": "false", **unmarked},
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert (tmp_path / "group.mp4").read_bytes() == (tmp_path / "alone.mp4").read_bytes()
    assert decode(tmp_path / "group.mp4")["frames"].std() > 5

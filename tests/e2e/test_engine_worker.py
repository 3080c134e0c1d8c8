"""The engine's worker features through the real server: a worker that is a group of two processes
making each video together (CFG-parallel over gloo on the CPU, as GPUs would over NCCL), and MP4
encoding that runs beside the next job instead of before it."""

from __future__ import annotations

import os
import time

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


def test_a_two_process_worker_group_serves_jobs(tmp_path, tiny_models):
    server = Server(tmp_path / "group", tiny_models, env={"OPENVEO_GPUS_PER_VIDEO": "2"})
    with server:
        ranks = server.wait_for_workers(2)
        key = server.new_key(credits=1)
        first, second = _submit(server, key, 11), _submit(server, key, 12)
        for job_id in (first, second):
            assert server.wait_status(key, job_id, {"COMPLETED", "FAILED"}, timeout=240) == "COMPLETED"
        # The second job was claimed while the first one's MP4 was still being encoded and stored.
        assert server.job_row(second).started_at < server.job_row(first).finished_at

        result = httpx.get(f"{server.url}/v2/requests/{first}", headers={"x-api-key": key}).json()
        video = httpx.get(result["output"])
        assert video.status_code == 200
        (tmp_path / "group.mp4").write_bytes(video.content)
        assert server.worker_pids() == ranks  # the same two processes all along
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in ranks), "a rank outlived its server"

    # The same video from one process. CFG-parallel runs the prompt and negative-prompt passes apart,
    # one per rank, which is what one process does with batch_cfg off: the same arithmetic, so the
    # same MP4 to the byte. (Against the batched default the frames differ by float rounding only,
    # but x264 turns such tiny differences in noise-like frames into different encodes.)
    alone = run_cli(
        "generate", PROMPT, "--model", "tiny", "--seed", "11", "--output", str(tmp_path / "alone.mp4"),
        "--data-dir", str(tmp_path / "cli"),
        env={"OPENVEO_MODELS_DIR": str(tiny_models), "OPENVEO_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
             "OPENVEO_BATCH_CFG": "false"},
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert (tmp_path / "group.mp4").read_bytes() == (tmp_path / "alone.mp4").read_bytes()
    assert decode(tmp_path / "group.mp4")["frames"].std() > 5

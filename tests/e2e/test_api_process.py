"""The real server process never loads torch: its workers do, in processes of their own."""

from __future__ import annotations

from pathlib import Path

from segmind import SegmindClient


def test_the_api_process_never_loads_torch(server, key):
    client = SegmindClient(api_key=key, base_url=f"{server.url}/v1", timeout=120)
    client.run_sync("veo-2", prompt="a cat", duration=5)  # a worker has run a job
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "libtorch" not in maps
    worker_maps = Path(f"/proc/{server.worker_pids()[0]}/maps").read_text()
    assert "libtorch" in worker_maps  # the probe can see torch where it is loaded

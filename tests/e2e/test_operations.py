"""What operators watch, on the real server: Prometheus metrics that move with real jobs, and JSON logs
that name the request and the job each line is about."""

from __future__ import annotations

import json
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.server import Server

WAN = (("model", "tiny-wan2.2"),)


def scrape(server: Server) -> dict[tuple[str, tuple], float]:
    reply = httpx.get(f"{server.url}/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)  # prometheus_client's own parser
        for sample in family.samples
    }


def wait_serving(server: Server) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)


def test_metrics_move_with_real_jobs_and_logs_are_json(tmp_path, tiny_models):
    with Server(tmp_path / "ops", tiny_models, env={"OPENVEO_LOG_FORMAT": "json"}) as server:
        key = server.new_key(credits=1)
        wait_serving(server)
        before = scrape(server)
        assert before[("openveo_workers_live", WAN)] == 1
        assert before.get(("openveo_jobs_finished_total", (*WAN, ("outcome", "succeeded"))), 0) == 0

        reply = httpx.post(
            f"{server.url}/v1/veo-2",
            json={"prompt": "counted"},
            headers={"x-api-key": key, "x-request-id": "req-from-the-balancer"},
            timeout=120,
        )
        assert reply.status_code == 200
        job_id = reply.headers["x-request-id"]  # Segmind's header: the job id
        after = scrape(server)
        assert after[("openveo_jobs_finished_total", (*WAN, ("outcome", "succeeded")))] == 1
        assert (
            after[("openveo_credits_charged_total", ())]
            == before[("openveo_credits_charged_total", ())] + 0.05
        )
        assert after[("openveo_job_latency_seconds_count", WAN)] == 1
        assert after[("openveo_job_latency_seconds_bucket", (("le", "+Inf"), *WAN))] == 1
        assert after[("openveo_denoising_step_seconds_count", WAN)] == 1
        assert 0 < after[("openveo_denoising_step_seconds_sum", WAN)] < 10
        assert after.get(("openveo_queue_depth", WAN), 0) == 0

    records = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
        else:  # only the first-run banner (a message for the person at the terminal) is plain text
            assert "ov-" in line or "key" in line or not line.strip(), line
    about_job = [r for r in records if r.get("job_id") == job_id]
    queued = [r for r in about_job if r["logger"] == "openveo.api" and "queued" in r["message"]]
    assert queued and queued[0]["request_id"] == "req-from-the-balancer"
    assert any(r["logger"] == "openveo.worker" and "succeeded" in r["message"] for r in about_job)
    access = [r for r in records if r["logger"] == "uvicorn.access" and "POST /v1/veo-2" in r["message"]]
    assert access and access[0]["request_id"] == "req-from-the-balancer" and access[0]["job_id"] == job_id

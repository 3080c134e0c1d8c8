"""Webhooks from the real server to a real HTTP receiver, verified with the `standardwebhooks` library."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import WEBHOOK_ENV
from tests.e2e.server import Server


class Receiver:
    """Records every delivery; answers 500 to the first `fail_first` of them."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if len(receiver.deliveries) < receiver.fail_first else 204
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.deliveries) >= count, f"{len(self.deliveries)} deliveries"


@pytest.fixture()
def receiver():
    received = Receiver(fail_first=1)
    yield received
    received.http.shutdown()


def test_a_finished_job_is_delivered_signed_and_retried(server, key, receiver):
    headers = {"x-api-key": key}
    created = httpx.post(
        f"{server.url}/v1/jobs", json={"prompt": "a kite", "webhook_url": receiver.url}, headers=headers
    ).json()
    receiver.wait(2)  # the first attempt got a 500, the retry a 204
    (first_headers, first_body, first_status), (headers2, body2, status2) = receiver.deliveries[:2]
    assert (first_status, status2) == (500, 204)
    assert first_headers["webhook-id"] == headers2["webhook-id"] and first_body == body2  # same message

    secret = httpx.get(f"{server.url}/v1/webhook-secret", headers=headers).json()["secret"]
    assert secret.startswith("whsec_")
    payload = Webhook(secret).verify(body2, headers2)  # raises if the signature is wrong
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == created["id"] and payload["data"]["status"] == "succeeded"
    video = httpx.get(payload["data"]["videos"][0]["url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"

    with pytest.raises(Exception):  # noqa: B017 - any verification error: another key's secret fails
        other = server.new_key(credits=1)
        Webhook(
            httpx.get(f"{server.url}/v1/webhook-secret", headers={"x-api-key": other}).json()["secret"]
        ).verify(body2, headers2)
    assert json.loads(body2)["data"]["charged"] is True


def test_a_canceled_job_sends_its_event(tmp_path, tiny_models):
    received = Receiver()
    try:
        no_workers = Server(tmp_path / "no-workers", tiny_models, workers=0, env=WEBHOOK_ENV)
        with no_workers as server:  # the job stays queued
            headers = {"x-api-key": server.new_key(credits=1)}
            created = httpx.post(
                f"{server.url}/v2/veo-2", json={"prompt": "x", "webhook_url": received.url}, headers=headers
            ).json()
            httpx.post(f"{server.url}/v1/jobs/{created['request_id']}/cancel", headers=headers)
            received.wait(1)
        event = json.loads(received.deliveries[0][1])
        assert event["type"] == "job.canceled" and event["data"]["id"] == created["request_id"]
        assert event["data"]["status"] == "canceled" and event["data"]["charged"] is False
    finally:
        received.http.shutdown()


def test_google_and_openai_creates_can_ask_for_webhooks(server, key):
    from openai import OpenAI

    received = Receiver()
    try:
        google = httpx.post(
            f"{server.url}/v1beta/models/veo-2:predictLongRunning",
            json={
                "instances": [{"prompt": "a gull"}],
                "parameters": {"durationSeconds": 5},
                "webhookConfig": {"uris": [received.url]},
            },
            headers={"x-goog-api-key": key},
        )
        assert google.status_code == 200, google.text
        sora = OpenAI(base_url=f"{server.url}/v1", api_key=key).videos.create(
            prompt="a gull", seconds="8", size="1280x720", extra_body={"webhook_url": received.url}
        )
        received.wait(2, timeout=120)
        events = {
            json.loads(body)["data"]["id"]: json.loads(body)["type"] for _, body, _ in received.deliveries
        }
        google_job = google.json()["name"].rsplit("/", 1)[1]
        assert events == {google_job: "job.succeeded", sora.id.removeprefix("video_"): "job.succeeded"}
        bad = httpx.post(
            f"{server.url}/v1beta/models/veo-2:predictLongRunning",
            json={"instances": [{"prompt": "x"}], "webhookConfig": {"uris": ["a", "b"]}},
            headers={"x-goog-api-key": key},
        )
        assert bad.status_code == 400 and "webhookConfig" in bad.json()["error"]["message"]
    finally:
        received.http.shutdown()

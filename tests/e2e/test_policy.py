"""The content policy through the real SDKs: a refused prompt gets each protocol's own error, creates
no job and costs nothing; personGeneration is enforced on Google's routes."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from openai import OpenAI
from segmind import SegmindClient
from segmind.exceptions import SegmindError
from sqlalchemy import func, select

from openveo.store.schema import jobs, refusals
from tests.e2e.test_operations import scrape
from tests.moderation import BREAK, FLAG

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VIOLATION = "violates the content policy"


@pytest.fixture(scope="module")
def server(sqlite_server):
    return sqlite_server


def job_count(server) -> int:
    db = server.database()
    try:
        with db.read() as conn:
            return conn.execute(select(func.count()).select_from(jobs)).scalar()
    finally:
        db.dispose()


def credits(server, key: str) -> float:
    return httpx.get(f"{server.url}/v1/get-user-credits", headers={"x-api-key": key}).json()["credits"]


def vertex(server, key: str) -> genai.Client:
    return genai.Client(enterprise=True, api_key=key, http_options=types.HttpOptions(base_url=server.url))


def refusal_rows(server, prompts: list[str]) -> list:
    db = server.database()
    try:
        with db.read() as conn:
            return list(conn.execute(select(refusals).where(refusals.c.prompt.in_(prompts))))
    finally:
        db.dispose()


def refused_metric(server) -> dict[tuple, float]:
    return {
        labels: value
        for (name, labels), value in scrape(server).items()
        if name == "openveo_prompts_refused_total"
    }


def test_a_blocked_prompt_is_refused_on_every_protocol_without_a_charge(server, key):
    before = job_count(server)
    counted_before = refused_metric(server)
    segmind = SegmindClient(api_key=key, base_url=f"{server.url}/v1")
    google = vertex(server, key)
    sora = OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    prompts = ["A Forbidden  Fruit on a table", "CODE RED in the hall", f"a {FLAG} storm"]
    for prompt in prompts:
        with pytest.raises(SegmindError) as caught:
            segmind.run_sync("veo-2", prompt=prompt)
        assert caught.value.status == 400 and VIOLATION in str(caught.value.detail)

        with pytest.raises(errors.ClientError) as google_error:
            google.models.generate_videos(model="veo-2.0-generate-001", prompt=prompt)
        assert google_error.value.code == 400 and google_error.value.status == "INVALID_ARGUMENT"
        assert VIOLATION in google_error.value.message

        with pytest.raises(openai.BadRequestError) as openai_error:
            sora.videos.create(prompt=prompt)
        body = openai_error.value.body
        assert body["code"] == "moderation_blocked" and VIOLATION in body["message"]

        native = httpx.post(f"{server.url}/v1/jobs", json={"prompt": prompt}, headers={"x-api-key": key})
        assert native.status_code == 400 and VIOLATION in native.json()["error"]
    assert "violence" in str(caught.value.detail)  # the moderation service's category reaches the caller
    assert credits(server, key) == 10 and job_count(server) == before
    assert "prompt refused by the content policy (moderation; native, key" in server.log()

    # Each refusal is in the deployment's audit table, and counted in /metrics by protocol and rule.
    rows = refusal_rows(server, prompts)
    rule = {prompts[0]: "terms", prompts[1]: "patterns", prompts[2]: "moderation"}
    assert len(rows) == 4 * len(prompts) and all(row.source == rule[row.prompt] for row in rows)
    assert {row.protocol for row in rows} >= {"openai", "native"} and len({row.protocol for row in rows}) == 4
    assert all(VIOLATION not in row.reason and row.reason for row in rows)  # the rule's own words
    counted = refused_metric(server)
    for row in rows:
        labels = (("protocol", row.protocol), ("source", row.source))
        assert counted[labels] - counted_before.get(labels, 0) == sum(
            (r.protocol, r.source) == (row.protocol, row.source) for r in rows
        )
    listed = server.cli("refusals", "--key", str(rows[0].key_id), "--json")
    assert listed.returncode == 0, listed.stderr
    audit = json.loads(listed.stdout)
    assert {entry["prompt"] for entry in audit} >= set(prompts) and audit[0]["id"] > audit[-1]["id"]


def test_a_failing_moderation_service_refuses_with_a_retryable_error(server, key):
    response = httpx.post(
        f"{server.url}/v1/veo-2", json={"prompt": f"{BREAK} a boat"}, headers={"x-api-key": key}
    )
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "content check is unavailable" in response.json()["error"]
    assert credits(server, key) == 10


def test_person_generation_on_google_routes(server, key):
    url = f"{server.url}/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning"
    headers = {"x-goog-api-key": key}

    def start(prompt: str, person: str | None = None) -> httpx.Response:
        parameters = (
            {"durationSeconds": 5} if person is None else {"durationSeconds": 5, "personGeneration": person}
        )
        return httpx.post(
            url, json={"instances": [{"prompt": prompt}], "parameters": parameters}, headers=headers
        )

    refused = start("two toddlers on a beach")  # Veo's default, allow_adult
    assert refused.status_code == 400 and "children" in refused.json()["error"]["message"]
    refused = start("a dancer on a beach", "dont_allow")
    assert (
        refused.status_code == 400 and "personGeneration is dont_allow" in refused.json()["error"]["message"]
    )
    assert credits(server, key) == 10

    accepted = start("a lighthouse in the fog", "dont_allow")
    assert accepted.status_code == 200, accepted.text
    job_id = accepted.json()["name"].rpartition("/operations/")[2]
    request = server.job_row(job_id).request
    assert "people, person" in request  # the model is steered away from people too

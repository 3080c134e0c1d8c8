"""Each protocol renders the same error in its own format, with its own status."""

from __future__ import annotations

import json

import pytest

from openveo.api import google, openai
from openveo.api.errors import ApiError, segmind_error


def body(response) -> dict:
    return json.loads(response.body)


@pytest.mark.parametrize(
    ("error", "segmind", "google_status", "openai_status"),
    [
        (
            ApiError(422, "duration must be 5-8", field="duration"),
            422,
            (400, "INVALID_ARGUMENT"),
            (400, "invalid_value"),
        ),
        (
            ApiError(406, "no credits", code="insufficient_credits"),
            406,
            (429, "RESOURCE_EXHAUSTED"),
            (429, "insufficient_quota"),
        ),
        (
            ApiError(406, "text/plain", code="unsupported_media"),
            406,
            (400, "INVALID_ARGUMENT"),
            (400, "unsupported_content_type"),
        ),
        (
            ApiError(429, "slow down", headers={"Retry-After": "3"}),
            429,
            (429, "RESOURCE_EXHAUSTED"),
            (429, "rate_limit_exceeded"),
        ),
        (ApiError(401, "bad key"), 401, (401, "UNAUTHENTICATED"), (401, "invalid_api_key")),
        (ApiError(404, "nothing"), 404, (404, "NOT_FOUND"), (404, "not_found")),
        (ApiError(500, "boom", code="generation_failed"), 500, (500, "INTERNAL"), (500, None)),
        (ApiError(503, "database down"), 503, (503, "UNAVAILABLE"), (503, "service_unavailable")),
    ],
)
def test_one_error_three_formats(error, segmind, google_status, openai_status):
    as_segmind = segmind_error(error)
    assert as_segmind.status_code == segmind and body(as_segmind) == {"error": error.message}

    as_google = google.render_error(error)
    assert (as_google.status_code, body(as_google)["error"]["status"]) == google_status
    assert body(as_google)["error"] == {
        "code": google_status[0],
        "message": error.message,
        "status": google_status[1],
    }

    as_openai = openai.render_error(error)
    assert (as_openai.status_code, body(as_openai)["error"]["code"]) == openai_status
    assert (
        body(as_openai)["error"]["message"] == error.message
        and body(as_openai)["error"]["param"] == error.field
    )
    retry = as_openai.headers.get("x-should-retry")
    assert retry == ("false" if 400 <= openai_status[0] < 500 and error.code != "rate_limited" else None)
    if "Retry-After" in error.headers:
        assert as_google.headers["retry-after"] == as_openai.headers["retry-after"] == "3"


@pytest.mark.parametrize(
    ("path", "google_path", "openai_path"),
    [
        ("/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning", True, False),
        ("/v1/projects/p/locations/l/publishers/google/models/m:fetchPredictOperation", True, False),
        ("/v1beta/models/veo-2:predictLongRunning", True, False),
        ("/v1beta/files/abc:download", True, False),
        ("/v1/videos", False, True),
        ("/v1/videos/video_1/content", False, True),
        ("/v1/veo-2", False, False),
        ("/v1/jobs", False, False),
    ],
)
def test_paths_pick_their_protocol(path, google_path, openai_path):
    assert google.matches(path) is google_path
    assert openai.matches(path) is openai_path

"""Fuzzing every route over real HTTP: schemathesis sends what `/openapi.json` describes (and, in its
negative mode, what it does not), hypothesis sends each protocol's own fields holding any JSON value,
in JSON and in multipart. Whatever arrives, the answer is no 5xx, a refusal moves no credit, and an
accepted request is charged exactly its job's reserved cost.

The server here runs no worker, so accepted jobs stay queued and nothing but a request moves a
balance. Budgets: `FUZZ_EXAMPLES` per route and mode (default 25); the runs are derandomized so CI
sees the same cases every time, and `FUZZ_SEED` makes another run of them (a deeper night's fuzz)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from openveo.api.app import create_app
from openveo.config import Settings
from openveo.service import billing
from openveo.service.keys import authenticate
from openveo.store.schema import jobs
from tests.helpers import png_bytes
from tests.inprocess import LocalServer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "0"))
CREDITS = 1_000_000.0


def fuzz_settings(examples: int = EXAMPLES) -> Callable[[Any], Any]:
    def apply(test: Any) -> Any:
        configured = settings(
            max_examples=examples,
            deadline=None,
            derandomize=FUZZ_SEED == 0,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(test)
        return seed(FUZZ_SEED)(configured) if FUZZ_SEED else configured

    return apply


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_root: Path) -> Iterator[LocalServer]:
    """No worker, no rate limit: every accepted request stays a queued, reserved job."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    with LocalServer(data_dir, models_root, worker=False, rate_limit_per_minute=0) as running:
        yield running


class Account:
    """One key and how its balance may move: a refusal not at all, an accepted request by its cost."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.secret = server.new_key(credits=CREDITS, name="fuzz")
        assert server.runtime is not None
        self.db = server.runtime.db
        key = authenticate(self.db, self.secret)
        assert key is not None
        self.key_id = key.id
        # Every way a protocol reads a key; a route takes the one it knows.
        self.headers = {
            "x-api-key": self.secret,
            "x-goog-api-key": self.secret,
            "authorization": f"Bearer {self.secret}",
        }

    def state(self) -> tuple[int, int, int]:
        """(balance, ledger sum, reserved cost of the key's jobs)."""
        with self.db.read() as conn:
            reserved = sum(
                row.cost for row in conn.execute(jobs.select().where(jobs.c.key_id == self.key_id))
            )
            return billing.balance(conn, self.key_id), billing.ledger_sum(conn, self.key_id), reserved

    def check(self, before: tuple[int, int, int], response: Any, what: str) -> None:
        status = response.status_code
        assert status < 500, f"{what} -> {status}: {response.text[:500]}"
        after = self.state()
        assert after[0] == after[1], f"{what}: the balance left its ledger"
        if status >= 300:
            assert after == before, f"{what} was refused ({status}) yet moved credits: {before} -> {after}"
        else:  # accepted: whatever it queued is charged exactly its cost, and nothing else moved
            assert before[0] - after[0] == after[2] - before[2], f"{what}: charged other than its jobs' cost"


@pytest.fixture(scope="module")
def account(server: LocalServer) -> Account:
    return Account(server)


# ---- schemathesis: every route, as the schema describes it ----------------------------------------

# Where a route needs a sensible path to reach its parser at all (a random API version is a 404).
PINNED = {
    "/{version}/publishers/google/models/{model_action}": {
        "version": "v1beta1",
        "model_action": "veo-2.0-generate-001:predictLongRunning",
    },
    "/{version}/models/{model_action}": {
        "version": "v1beta",
        "model_action": "veo-2.0-generate-001:predictLongRunning",
    },
    "/v1/{slug}": {"slug": "veo-2"},
    "/v2/{slug}": {"slug": "veo-2"},
}
# Routes whose accepted requests wait for a worker, which this server has not: the synchronous
# Segmind call (its parser is /v2/{slug}'s, fuzzed there) and the event stream.
# /readyz answers 503 here, truthfully: no worker serves the model.
WAITS = {("POST", "/v1/{slug}"), ("GET", "/v1/jobs/{job_id}/events"), ("GET", "/readyz")}
OPENAPI = create_app(Settings()).openapi()


def _has_invalid_inputs(operation: dict[str, Any]) -> bool:
    """Whether the negative mode has anything to send: a body or a typed parameter (any string is a
    valid path segment)."""
    typed = [p for p in operation.get("parameters", []) if p.get("schema", {}).get("type") != "string"]
    return "requestBody" in operation or bool(typed)


ROUTES = sorted(
    (method.upper(), path)
    for path, operations in OPENAPI["paths"].items()
    for method in operations
    if (method.upper(), path) not in WAITS
)
CASES = [
    (method, path, mode, pinned)
    for method, path in ROUTES
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for pinned in ((True, False) if path in PINNED else (False,))
    if mode == schemathesis.GenerationMode.POSITIVE
    or _has_invalid_inputs(OPENAPI["paths"][path][method.lower()])
]


@pytest.fixture(scope="module")
def schema(server: LocalServer) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_every_route_is_fuzzed_with_a_body_where_it_takes_one(schema):
    """The schema describes the bodies the routes really read, so the fuzzer sends them."""
    takes_body = [path for method, path in ROUTES if method == "POST" and "cancel" not in path]
    assert takes_body
    for path in takes_body:
        operation = schema[path]["POST"]
        assert operation.definition.raw.get("requestBody"), f"POST {path} has no body in the schema"


@pytest.mark.parametrize(("method", "path", "mode", "pinned"), CASES)
def test_route_under_schemathesis(server, account, schema, method, path, mode, pinned):
    """`pinned`: with the path a real client uses (PINNED), so the body reaches its parser."""
    operation = schema[path][method]
    strategy = operation.as_strategy(
        generation_mode=mode, path_parameters=PINNED.get(path) if pinned else None
    )

    @fuzz_settings()
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        before = account.state()
        response = case.call(base_url=server.url, headers=account.headers, timeout=30)
        account.check(before, response, f"{method} {case.formatted_path}")

    fuzz()


# ---- hypothesis: each protocol's fields holding anything ------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither (test_hostile sends them raw)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
PNG = png_bytes(32, 32)
PNG_BASE64 = base64.b64encode(PNG).decode()
FILE = "<the PNG as a file part>"  # in multipart; in JSON, a string that is no image


Field = tuple[list[Any], list[Any]]  # (values that are right, values that are wrong)


def field(right: list[Any], wrong: list[Any]) -> Field:
    return right, wrong


@st.composite
def request_body(draw: st.DrawFn, fields: dict[str, Field], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A request a client could mean, of any of the fields' right values, with up to two fields then
    holding something wrong: a plausible mistake or any JSON value at all (or a name it does not have)."""
    names = sorted(fields)
    chosen = required + tuple(draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))))
    body = {name: draw(st.sampled_from(fields[name][0])) for name in chosen}
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from([*names, "extra", "lastFrame", "loras", "Prompt"]))
        wrong = fields[name][1] if name in fields else []
        body[name] = draw(st.sampled_from(wrong) | JSON_VALUES if wrong else JSON_VALUES)
    return body


PROMPT = field(["a red fox in the snow", "  rain on a window ", "狐"], ["", "   ", "x" * 40_000])
TEXT = field(["blurry", "", "low quality, text"], ["x" * 40_000])
DURATION = field([5, 8, "5", "7.0", 6.0], [4, 0, 12, "five", 5.5, -5])
SEED = field([-1, 0, 42, 2**32, 2**63 - 1, "17"], [2**63, -2, "x", 1.5])
IMAGE = field(
    [FILE, f"data:image/png;base64,{PNG_BASE64}", PNG_BASE64],
    ["data:,", "http://127.0.0.1:9/x.png", "http://[::ffff:127.0.0.1]/x.png", "%%%", "aGVsbG8="],
)
WEBHOOK = field([None], ["http://127.0.0.1:9/hook", "http://[::1]:9/hook", "not a url", "", "ftp://x"])
ASPECT = field(["16:9", "9:16"], ["1:1", "4:3", "16/9"])

PROTOCOL_FIELDS: dict[str, tuple[str, dict[str, Field]]] = {
    "segmind": (
        "/v2/veo-2",
        {
            "prompt": PROMPT,
            "negative_prompt": TEXT,
            "duration": DURATION,
            "aspect_ratio": ASPECT,
            "seed": SEED,
            "image": IMAGE,
            "webhook_url": WEBHOOK,
        },
    ),
    "native": (
        "/v1/jobs",
        {
            "prompt": PROMPT,
            "negative_prompt": TEXT,
            "model": field(["tiny", "veo-2", "tiny-wan2.1", "tiny-ltx"], ["nope", ""]),
            "seed": SEED,
            "duration_s": DURATION,
            "aspect_ratio": ASPECT,
            "num_videos": field([1, 2, 3, 4, "2"], [5, 0, -1, 2.5]),
            "image": IMAGE,
            "steps": field([1, 4, 100, "3", None], [0, 101, 2.5]),
            "guidance": field([0, 5.5, 30, "2.5", None], [31, -1, "x"]),
            "output_size": field(
                ["160x96", "1280x720", [160, 96], None], ["96x160", "x", "0x0", [2**70, 96], [1, 2, 3]]
            ),
            "webhook_url": WEBHOOK,
        },
    ),
    "openai": (
        "/v1/videos",
        {
            "prompt": PROMPT,
            "model": field(["sora-2", "sora-2-pro", "tiny"], ["nope"]),
            "seconds": field(["4", "8", 8], ["12", "5"]),
            "size": field(["720x1280", "1280x720", "1792x1024"], ["160x96", "1280X720 "]),
            "input_reference": IMAGE,
            "seed": SEED,
            "webhook_url": WEBHOOK,
        },
    ),
}


def as_json(body: dict[str, Any]) -> dict[str, Any]:
    return {name: "not-an-image" if value == FILE else value for name, value in body.items()}


def as_form(body: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The body as multipart: text parts (a JSON rendering of what is not text) and a PNG file part."""
    data, files = {}, {}
    for name, value in body.items():
        if value == FILE:
            files[name] = ("frame.png", PNG, "image/png")
        else:
            data[name] = value if isinstance(value, str) else json.dumps(value)
    return data, files


@pytest.mark.parametrize("encoding", ["json", "multipart"])
@pytest.mark.parametrize("protocol", PROTOCOL_FIELDS)
def test_protocol_fields_holding_anything(server, account, protocol, encoding):
    path, fields = PROTOCOL_FIELDS[protocol]

    @fuzz_settings(EXAMPLES * 4)
    @given(body=request_body(fields, required=("prompt",)))
    def fuzz(body: dict[str, Any]) -> None:
        before = account.state()
        url, headers = f"{server.url}{path}", account.headers
        if encoding == "json":
            response = httpx.post(url, json=as_json(body), headers=headers, timeout=30)
        else:
            data, files = as_form(body)
            response = httpx.post(url, data=data, files=files or None, headers=headers, timeout=30)
        account.check(before, response, f"{protocol} {encoding} {body!r}")

    fuzz()


GOOGLE_PATHS = [
    "/v1beta1/publishers/google/models/veo-2.0-generate-001:predictLongRunning",
    "/v1beta/models/veo-2.0-generate-001:predictLongRunning",
]
GOOGLE_PARAMETERS = {
    "sampleCount": field([1, 2, 4], [5, 0, "2"]),
    "durationSeconds": DURATION,
    "aspectRatio": ASPECT,
    "resolution": field(["720p"], ["1080p", "720P "]),
    "fps": field([8], [24, "8"]),
    "seed": field([0, 7, 2**32 - 1], [2**32, -1, "7"]),
    "personGeneration": field(["allow_adult", "dont_allow"], ["allow_all", "ALLOW"]),
    "negativePrompt": TEXT,
    "enhancePrompt": field([True, False], ["yes"]),
    "compressionQuality": field(["optimized", "lossless"], ["best"]),
    "storageUri": field([None, ""], ["gs://bucket/out"]),
    "generateAudio": field([None, False], [True]),
}
GOOGLE_IMAGES = [
    {"bytesBase64Encoded": PNG_BASE64, "mimeType": "image/png"},
    {"bytesBase64Encoded": PNG_BASE64},
    None,
]
GOOGLE_BAD_IMAGES = [
    {"bytesBase64Encoded": "not base64"},
    {"bytesBase64Encoded": ""},
    {"gcsUri": "gs://b/x.png"},
    {"bytesBase64Encoded": 123},
    "abc",
]


@st.composite
def google_body(draw: st.DrawFn) -> dict[str, Any]:
    """A Veo request of any of its right fields, with a mistake or two in the instance, the
    parameters or the body around them."""
    instance = draw(
        request_body({"prompt": PROMPT, "image": field(GOOGLE_IMAGES, GOOGLE_BAD_IMAGES)}, ("prompt",))
    )
    body = {"instances": [instance], "parameters": draw(request_body(GOOGLE_PARAMETERS))}
    around = {
        "instances": field([[instance]], [[], [instance, instance], instance, "x"]),
        "parameters": field([body["parameters"]], ["x", [1]]),
        "webhookConfig": field(
            [None], [{"uris": WEBHOOK[1][:2]}, {"uris": []}, {"uris": "x"}, {"uris": [1]}]
        ),
    }
    return {**body, **draw(request_body(around))}


@pytest.mark.parametrize("path", GOOGLE_PATHS, ids=["vertex", "gemini"])
def test_google_fields_holding_anything(server, account, path):
    @fuzz_settings(EXAMPLES * 4)
    @given(body=google_body())
    def fuzz(body: dict[str, Any]) -> None:
        before = account.state()
        response = httpx.post(f"{server.url}{path}", json=body, headers=account.headers, timeout=30)
        account.check(before, response, f"google {body!r}")

    fuzz()


def test_the_key_lists_after_all_of_it(server, account):
    """Whatever the fuzzers sent, the key's lists and its balance still answer."""
    for path in ("/v1/jobs?limit=100", "/v1/videos?limit=100", "/v1/get-user-credits"):
        response = httpx.get(f"{server.url}{path}", headers=account.headers, timeout=30)
        assert response.status_code == 200, response.text
    balance, ledger, _ = account.state()
    assert balance == ledger

"""Log lines: no API key or link signature in any of them (uvicorn's access log included), in text
and JSON, and one traceback per unhandled error."""

from __future__ import annotations

import io
import json
import logging

import pytest

from openveo import logs


@pytest.fixture()
def captured():
    """Log records of the named loggers as the service formats them, text and JSON."""
    streams = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = {}
    for kind, stream in streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logs.JsonFormatter() if kind == "json" else logging.Formatter(logs.TEXT_FORMAT))
        handlers[kind] = handler
    loggers = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error", "openveo.api")]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        for handler in handlers.values():
            logger.addHandler(handler)
    logs.install_filters()
    yield streams
    for logger in loggers:
        for handler in handlers.values():
            logger.removeHandler(handler)


def test_keys_and_signatures_in_query_strings_are_redacted(captured):
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "GET",
        "/v1beta/models/veo-2/operations/abc?key=ov-SECRETKEY&alt=json",
        "1.1",
        200,
    )
    access.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/files/x.mp4?expires=9&signature=beef", "1.1", 200
    )
    for stream in captured.values():
        text = stream.getvalue()
        assert "ov-SECRETKEY" not in text and "beef" not in text
        assert "key=[redacted]&alt=json" in text and "signature=[redacted]" in text
    assert [json.loads(line)["logger"] for line in captured["json"].getvalue().splitlines()] == [
        "uvicorn.access"
    ] * 2


@pytest.mark.crash_expected
def test_an_unhandled_error_is_logged_once(captured):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("openveo.api").exception("unhandled error on GET /x")  # the API's crash handler
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")  # the server's copy
    assert captured["text"].getvalue().count("Traceback") == 1

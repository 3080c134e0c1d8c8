"""Logging for the long-running commands: readable lines by default, or one JSON object per line
(`OPENVEO_LOG_FORMAT=json`) for log pipelines, each carrying the request and the job it is about.

The ids travel in context variables: the API sets `request_id` for each HTTP request (the caller's
`X-Request-Id`, or a new one) and `job_id` once a request has a job; a worker sets `job_id` while it
runs one. Threads started with `run_in_threadpool` inherit them.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str | None] = ContextVar("openveo_request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("openveo_job_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("diffusers", "transformers", "huggingface_hub")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, variable in (("request_id", request_id), ("job_id", job_id)):
            if (value := variable.get()) is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Query parameters that carry a secret: Google's documented `?key=`, and the signature of a result link.
SECRET_PARAMETERS = re.compile(r"([?&](?:key|api_key|apikey|token|access_token|signature)=)[^&\s\"]+", re.I)


class RedactSecrets(logging.Filter):
    """No log line carries an API key or a link's signature, whoever logs it (the access log too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRET_PARAMETERS.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class OneTraceback(logging.Filter):
    """The API's crash handler logs an unhandled error once, with its request id; the server's own
    second copy of the same traceback is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Exception in ASGI application"


def install_filters() -> None:
    """On uvicorn's loggers (which keep handlers of their own) and on ours; safe to call again."""
    targets: list[tuple[logging.Filterer, type[logging.Filter]]] = [
        (logging.getLogger("uvicorn.access"), RedactSecrets),
        (logging.getLogger("uvicorn.error"), OneTraceback),
        *((handler, RedactSecrets) for handler in logging.getLogger().handlers),
    ]
    for target, kind in targets:
        if not any(isinstance(existing, kind) for existing in target.filters):
            target.addFilter(kind())


def setup(verbose: bool, log_format: str = "text") -> None:
    """Send every log record (uvicorn's too, when JSON) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, each start
    install_filters()


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)

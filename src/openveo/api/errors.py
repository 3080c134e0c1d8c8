"""Errors in each protocol's own format. Routes raise `ApiError`; the handlers here render it (and
Starlette's own 404/405 and any crash) in the format of the protocol the path belongs to.
Segmind's `{"error": "..."}` is the default: its SDK reads only `body["error"]`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from openveo import logs
from openveo.store.db import OUTAGE, first_line

log = logging.getLogger("openveo.api")


# What went wrong, independent of any protocol; each renderer picks its own status and words for it.
CODES_BY_STATUS = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}

DATABASE_DOWN = "the database is unavailable for a moment; try again shortly"


class ApiError(Exception):
    """An error answer. `status` is the Segmind status (the canonical one); `code` says what it means,
    and must be given where a status means two things (406: no credits, or an unsupported body)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES_BY_STATUS.get(status, "error")
        self.field = field
        self.headers = headers or {}


Renderer = Callable[[ApiError], Response]


def segmind_error(error: ApiError) -> Response:
    return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers)


@dataclass
class ErrorFormats:
    """Which renderer answers for which path; the first matching prefix wins."""

    default: Renderer = segmind_error
    by_prefix: list[tuple[Callable[[str], bool], Renderer]] = field(default_factory=list)

    def add(self, matches: Callable[[str], bool], renderer: Renderer) -> None:
        self.by_prefix.append((matches, renderer))

    def render(self, request: Request, error: ApiError) -> Response:
        for matches, renderer in self.by_prefix:
            if matches(request.url.path):
                return renderer(error)
        return self.default(error)


def method_not_allowed(request: Request, allowed: Iterable[str]) -> ApiError:
    """The 405 every route gives for a method it does not take: which ones it does, in words and in
    `Allow`."""
    methods = sorted({method.strip() for method in allowed})
    message = f"method {request.method} is not allowed on {request.url.path}"
    if methods:
        message += f"; use {' or '.join(methods)}"
    return ApiError(405, message, headers={"Allow": ", ".join(methods)} if methods else None)


def install(app: FastAPI, formats: ErrorFormats) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return formats.render(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            return formats.render(request, method_not_allowed(request, filter(None, allowed.split(","))))
        message = str(exc.detail)
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"not found: {request.method} {request.url.path}"
        return formats.render(request, ApiError(exc.status_code, message, headers=dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        error = ApiError(422, f"{where or 'request'}: {first.get('msg', 'invalid')}", field=where or None)
        return formats.render(request, error)

    async def _outage(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, first_line(exc))
        return formats.render(request, ApiError(503, DATABASE_DOWN, headers={"Retry-After": "2"}))

    for outage in OUTAGE:
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # This handler runs outside the middleware that tagged the request: tag this line again.
        logs.request_id.set(getattr(request.state, "request_id", None))
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return formats.render(request, ApiError(500, "internal server error; see the server log"))

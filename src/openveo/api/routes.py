"""Which methods the app takes on a path, for honest 405s: Segmind's `/v1/{slug}` would otherwise
answer for every other `/v1/...` route a method it does not take."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from starlette.routing import compile_path


def allowed_methods(request: Request, *, exact_only: bool = False) -> set[str]:
    """The methods the app's routes take on this request's path. A route without path parameters
    (`/v1/videos`) outranks the ones with (`/v1/{slug}`); `exact_only` asks for those alone."""
    table = getattr(request.app.state, "route_table", None)
    if table is None:  # the routes are all there once a request arrives
        table = request.app.state.route_table = _table(request.app)
    exact, templated = table
    path = request.url.path
    for candidates in (exact,) if exact_only else (exact, templated):
        found = {method for pattern, methods in candidates if pattern.match(path) for method in methods}
        if found:
            return found
    return set()


Routes = list[tuple[re.Pattern[str], set[str]]]


def _table(app: FastAPI) -> tuple[Routes, Routes]:
    exact: Routes = []
    templated: Routes = []
    for path, operations in app.openapi()["paths"].items():
        methods = {method.upper() for method in operations}
        (templated if "{" in path else exact).append((compile_path(path)[0], methods))
    return exact, templated

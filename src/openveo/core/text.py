"""Text that can be stored and sent back: valid Unicode without unpaired surrogates (JSON's `\\ud800`
escapes let them in, and UTF-8, so every database and every JSON answer, cannot carry them) and
without NUL characters (PostgreSQL's text refuses them)."""

from __future__ import annotations

import json
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # a str holds a surrogate only when it is unpaired
REPLACEMENT = "\ufffd"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, as it reads after a field's name; None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not hold a NUL character"
    return "must be valid Unicode text; it holds an unpaired surrogate"


def load_stored(text: str | bytes) -> Any:
    """JSON as stored. Rows an older version stored may hold unpaired surrogates: they read as U+FFFD,
    so such a job still renders instead of breaking every list it is on."""
    return _scrubbed(json.loads(text))


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: m.group() if m.group() == "\x00" else REPLACEMENT, value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {_scrubbed(key): _scrubbed(item) for key, item in value.items()}
    return value

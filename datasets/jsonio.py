"""The fastest JSON codec available: orjson (a Prefect dependency) else the standard library."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

loads: Callable[[bytes | str], Any]  # orjson's, else the standard library's (which takes no memoryview)

try:
    import orjson

    loads = orjson.loads

    def dumps_bytes(obj) -> bytes:
        return orjson.dumps(obj)

    DECODE_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - orjson ships with prefect
    loads = json.loads

    def dumps_bytes(obj) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    DECODE_ERRORS = (ValueError,)

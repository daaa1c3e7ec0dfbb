"""Label values with a bounded set by construction, shared by the metric and trace sinks.

Metric labels live forever once created, so nothing that grows with traffic may become one: an
operation name is reduced to its template (query dropped, id-like path segments replaced by
``{id}``), methods outside the standard set become ``_OTHER``, and every label keeps at most
``limit`` distinct values; later newcomers are reported as ``_other``.
"""

from __future__ import annotations

import re
import threading
from typing import Final

from egress.observability._redact import redact_text

__all__ = ["METHODS", "OTHER", "BoundedLabel", "method_label", "operation_template",
           "status_class"]

OTHER: Final = "_other"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                            "CONNECT", "TRACE"})

# A path segment that names one object: digits mixed in and long, a UUID, or a long hex run.
_ID = re.compile(r"^(?=.*\d)[\w.\-~:]{8,}$|^[0-9a-fA-F\-]{16,}$|^\d+$")


def operation_template(operation: str) -> str:
    """``operation`` without its query, with id-like path segments replaced by ``{id}`` and
    secret shapes masked (an operation name is the caller's free text)."""
    operation = redact_text(operation.split("?", 1)[0].split("#", 1)[0])
    if "/" not in operation:
        return operation[:120]
    head, sep, path = operation.partition("/")
    parts = ["{id}" if _ID.match(p) else p for p in path.split("/")]
    return (head + sep + "/".join(parts))[:120]


def method_label(method: str | None) -> str:
    if method is None:
        return ""
    upper = method.upper()
    return upper if upper in METHODS else "_OTHER"


def status_class(status: int | None) -> str:
    """``"2xx"`` ... ``"5xx"`` for an answer, ``"error"`` when none arrived."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


class BoundedLabel:
    """Hands out at most ``limit`` distinct values; any further value becomes ``_other``."""

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER

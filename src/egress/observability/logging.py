"""Events as log lines: stdlib :mod:`logging`, one line per event, fields in ``extra``.

>>> from egress.observability.logging import LoggingSink, JsonFormatter, install
>>> install(level="INFO", json=True)          # optional: a handler on the "egress" logger
>>> client = ApiClient(url, sink=LoggingSink())                       # doctest: +SKIP

Each event goes to the logger of the module that decides it (``egress.policies.retry``,
``egress.policies.breaker``, ``egress.http.client``, ``egress.payments.keeper``, ...), at a level
chosen per kind (:data:`DEFAULT_LEVELS`), with its message ``"<kind> <operation> k=v ..."`` and
every field in ``extra`` (``record.event``, ``record.operation``, ``record.attempt``, ...), so a
JSON formatter or structlog's ``ProcessorFormatter`` + ``ExtraAdder`` gets them as fields.

Redaction is by construction: every value passes through :func:`redact_value` before it is put
on a record; :class:`RedactingFilter` does the same to records from anywhere (attach it to your
handler to cover the backends' loggers too) and :class:`JsonFormatter` redacts what it writes,
tracebacks included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, Final

from egress.events import Event
from egress.observability._redact import redact_text, redact_value

__all__ = ["DEFAULT_LEVELS", "JsonFormatter", "LoggingSink", "RedactingFilter", "install",
           "logger_for"]

#: The level of each kind; kinds not listed log at INFO, per-call kinds at DEBUG.
DEFAULT_LEVELS: Final[Mapping[str, int]] = {
    "call.started": logging.DEBUG,
    "call.finished": logging.DEBUG,
    "attempt.started": logging.DEBUG,
    "attempt.succeeded": logging.DEBUG,
    "attempt.failed": logging.INFO,
    "retry.scheduled": logging.INFO,
    "retry.exhausted": logging.WARNING,
    "retry.given_up": logging.WARNING,
    "retry.budget_exhausted": logging.WARNING,
    "retry.nested_suppressed": logging.DEBUG,
    "deadline.exceeded": logging.WARNING,
    "timeout.attempt": logging.INFO,
    "circuit.state_changed": logging.WARNING,
    "circuit.rejected": logging.INFO,
    "circuit.threshold_exceeded": logging.WARNING,
    "bulkhead.rejected": logging.WARNING,
    "ratelimit.rejected": logging.WARNING,
    "ratelimit.paused": logging.WARNING,
    "ratelimit.waited": logging.DEBUG,
    "http.insecure_transport": logging.WARNING,
    "http.redirect_followed": logging.DEBUG,
    "http.token_refreshed": logging.INFO,
    "idempotency.key_reused": logging.INFO,
    "idempotency.key_renewed": logging.INFO,
    "idempotency.replayed": logging.INFO,
    "payments.outcome_unknown": logging.WARNING,
    "payments.reconciled": logging.INFO,
}

# Which module decides each family of events: its logger carries them.
_MODULES: Final = (
    ("call.", "egress.pipeline"),
    ("attempt.", "egress.pipeline"),
    ("retry.", "egress.policies.retry"),
    ("deadline.", "egress.policies.retry"),
    ("timeout.", "egress.policies.timeout"),
    ("circuit.", "egress.policies.breaker"),
    ("bulkhead.", "egress.policies.bulkhead"),
    ("ratelimit.", "egress.policies.ratelimit"),
    ("http.", "egress.http.client"),
    ("idempotency.", "egress.payments.keeper"),
    ("payments.", "egress.payments.keeper"),
)


def logger_for(kind: str) -> logging.Logger:
    """The logger events of ``kind`` are written to."""
    for prefix, module in _MODULES:
        if kind.startswith(prefix):
            return logging.getLogger(module)
    return logging.getLogger("egress.events")


def _fields(event: Event) -> dict[str, Any]:
    return {f.name: redact_value(getattr(event, f.name)) for f in dataclasses.fields(event)}


class _Text:
    """The ``k=v`` part of a message, joined only if a handler formats the record."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.fields.items()
                        if k not in ("operation", "at") and v is not None)


class LoggingSink:
    """An :class:`~egress.events.EventSink` writing one log record per event.

    ``levels`` overrides :data:`DEFAULT_LEVELS` per kind; ``per_call=True`` also logs the
    per-call events (at DEBUG by default: enable that level only while investigating).
    """

    __slots__ = ("_cache", "_levels", "per_call")

    def __init__(self, *, levels: Mapping[str, int] | None = None,
                 per_call: bool = False) -> None:
        self._levels = {**DEFAULT_LEVELS, **(levels or {})}
        self.per_call = per_call
        self._cache: dict[str, tuple[logging.Logger, int]] = {}

    def emit(self, event: Event) -> None:
        kind = event.kind
        found = self._cache.get(kind)
        if found is None:
            level = self._levels.get(kind, logging.DEBUG if event.per_call else logging.INFO)
            found = self._cache[kind] = (logger_for(kind), level)
        logger, level = found
        if kind == "circuit.state_changed" and getattr(event, "new", "") == "closed":
            level = logging.INFO  # recovery is good news, not a warning
        if not logger.isEnabledFor(level):
            return  # nothing is built for a record nobody reads
        fields = _fields(event)
        logger.log(level, "%s %s %s", kind, fields["operation"], _Text(fields),
                   extra={"event": kind, **fields})

    def __repr__(self) -> str:
        return f"LoggingSink(per_call={self.per_call})"


# Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class RedactingFilter(logging.Filter):
    """Redacts any record in place: message and arguments, ``extra`` fields, headers.

    Attach it to a *handler* (``handler.addFilter(RedactingFilter())``) so that it sees the
    records of every logger that handler serves, including httpx, httpcore and aiohttp.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: keep the format
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key, value in _extras(record).items():
            setattr(record, key, redact_value(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field.

    Everything written is redacted (message, fields, exception text).
    """

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(message),
        }
        for key, value in _extras(record).items():
            payload[key] = redact_value(value)
        if record.exc_info:
            payload["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


def install(level: int | str = logging.INFO, *, json: bool = False,
            stream: IO[str] | None = None,
            formatter: Callable[[], logging.Formatter] | None = None) -> logging.Handler:
    """Attach one redacting handler to the ``egress`` logger (for scripts and the demo).

    Applications with their own logging setup should not call this: add
    :class:`RedactingFilter` (and :class:`JsonFormatter`, if wanted) to their handlers.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    if formatter is not None:
        handler.setFormatter(formatter())
    elif json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("egress")
    root.addHandler(handler)
    root.setLevel(level)
    return handler

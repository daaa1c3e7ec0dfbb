"""Keep httpx's and httpcore's own log records free of secrets (installed by the httpx backend).

* httpx logs every request at INFO as ``HTTP Request: GET <full URL>``: the query string (an
  ``api_key=``) is replaced by ``?[redacted]``.
* httpcore logs, at DEBUG, ``receive_response_headers.complete return_value=(..., [headers])``:
  the response headers (a server echoing a key, a ``Set-Cookie``) are dropped from the record.

Why a filter and not "never hand httpx a secret": httpx must see the URL and the headers to send
them, and its logging is what operators turn on when debugging. A ``logging.Filter`` on those
loggers rewrites the record before any handler sees it, whatever handlers the application
installs. It is process-wide by nature (a logger is global): other httpx clients in the process
get the same masking, which is what one wants of a query that may hold a key.
"""

from __future__ import annotations

import logging

__all__ = ["install"]

_LOGGERS = ("httpx", "httpcore.http11", "httpcore.http2", "httpcore.connection",
            "httpcore.proxy", "httpcore.socks")
_HEADERS_EVENT = "receive_response_headers.complete"


class _Mask(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "httpx":
            if isinstance(record.args, tuple):
                record.args = tuple(_plain(arg) for arg in record.args)
        elif isinstance(record.msg, str) and record.msg.startswith(_HEADERS_EVENT):
            record.msg = f"{_HEADERS_EVENT} (response headers not logged)"
            record.args = ()
        return True


def _plain(arg: object) -> object:
    """An ``httpx.URL`` (or URL-shaped string) argument without its query string."""
    text = str(arg)
    if "://" in text and "?" in text:
        return text.split("?", 1)[0] + "?[redacted]"
    return arg


_FILTER = _Mask("egress-httpx-secrets")


def install() -> None:
    """Attach the filter to httpx's and httpcore's loggers (once)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

"""What an error answer may put on an exception: allow-listed facts, never echoed text.

A server's error body often echoes the request (the caller's email, a header value, a card
field) in free text, in any shape. Redacting by shape misses what it does not know, so the
excerpt on :class:`~egress.errors.StatusError` is built the other way round: only *known error
fields* whose value is an *identifier* are kept.

* A JSON body: the error object (the body itself, its ``error`` object, or the first of its
  ``errors``) contributes ``type``, ``code``, ``error`` (OAuth2), ``error_code``,
  ``decline_code``, ``status``, ``reason`` and ``param``, each only if it is a short identifier
  (letters, digits, ``_ . - : / [ ]``), and never one that holds a secret of the call. Free text
  (``message``, ``detail``, ``error_description``, ...) is never copied: read it from
  ``exc.response`` where you decide it is safe.
* Any other body: its size and media type only.

Response headers kept on the exception lose cookies and auth challenges (``_headers.py``) and
any value that contains a secret of the call (a server echoing ``X-Api-Key`` back).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from egress._secret import Secret

__all__ = ["ERROR_FIELDS", "error_excerpt", "scrub_headers", "secrets_in", "variants"]

#: The error fields an excerpt may show, in this order.
ERROR_FIELDS = ("type", "error", "code", "error_code", "decline_code", "status", "reason",
                "param")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:/\[\]\-]{1,80}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9.+\-]{1,40}/[A-Za-z0-9.+\-]{1,60}")
_MIN_SECRET = 4


def variants(secrets: Iterable[str]) -> tuple[str, ...]:
    """The secrets as a server may echo them: as sent, and URL-encoded (query, form)."""
    out: set[str] = set()
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            out.update((str(secret), quote(secret, safe=""), quote_plus(secret)))
    return tuple(out)


def _holds_secret(text: str, secrets: tuple[str, ...]) -> bool:
    return any(secret in text for secret in secrets)


def _error_object(doc: Any) -> Mapping[str, Any] | None:
    if not isinstance(doc, Mapping):
        return None
    inner = doc.get("error")
    if isinstance(inner, Mapping):
        return inner
    errors = doc.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return errors[0]
    return doc


def error_excerpt(content: bytes, content_type: str | None, secrets: Iterable[str] = ()
                  ) -> str:
    """A short, safe summary of an error body (see the module docstring)."""
    known = variants(secrets)
    doc: Any = None
    if content[:1] in (b"{", b"[") or content.lstrip()[:1] in (b"{", b"["):
        try:
            doc = json.loads(content)
        except (ValueError, RecursionError):
            doc = None
    error = _error_object(doc)
    if error is not None:
        facts = []
        for name in ERROR_FIELDS:
            value = error.get(name)
            if isinstance(value, bool) or not isinstance(value, str | int):
                continue
            text = str(value)
            if _IDENTIFIER.fullmatch(text) and not _holds_secret(text, known):
                facts.append(f"{name}={text}")
        if facts:
            return " ".join(facts)
    media = (content_type or "").split(";", 1)[0].strip()
    shown = f", {media}" if _MEDIA_TYPE.fullmatch(media) else ""
    return f"<{len(content)} bytes{shown}>" if content else ""


def scrub_headers(headers: Iterable[tuple[str, str]], secrets: Iterable[str]
                  ) -> tuple[tuple[str, str], ...]:
    """``headers`` with every value that holds one of ``secrets`` replaced by ``[redacted]``."""
    known = variants(secrets)
    if not known:
        return tuple(headers)
    return tuple((k, "[redacted]" if _holds_secret(v, known) else v) for k, v in headers)


def secrets_in(*values: object) -> list[str]:
    """Every :class:`~egress.Secret` value in ``params=``/``form=``/``headers=``-shaped
    arguments: a mapping or a sequence of pairs, whose values may be lists (two levels, which
    is all those arguments have; ``json=`` bodies report theirs while being encoded)."""
    found: list[str] = []
    for value in values:
        if value is None:
            continue
        items = value.values() if isinstance(value, Mapping) else (
            pair[1] for pair in value if isinstance(pair, tuple) and len(pair) == 2
        ) if isinstance(value, list | tuple) else ()
        for item in items:
            if isinstance(item, Secret):
                found.append(item.reveal())
            elif isinstance(item, list | tuple):
                found += [v.reveal() for v in item if isinstance(v, Secret)]
    return found

"""The containers that hold revealed secrets print as masks, and behave as str/bytes/dict."""

from __future__ import annotations

import traceback

from rich.pretty import traverse

from egress import Secret
from egress._redacted import (
    RedactedHeaders,
    RedactedURL,
    RevealedBytes,
    RevealedStr,
    drop_frames,
    reveal,
)

KEY = "sk_live_" + "K" * 120  # longer than rich's 80-character cut


def test_revealed_values_are_the_values_but_print_masked() -> None:
    text, body = RevealedStr(KEY), RevealedBytes(KEY.encode())
    assert text == KEY and hash(text) == hash(KEY) and f"{text}" == KEY
    assert body == KEY.encode() and body.decode() == KEY
    for shown in (repr(text), repr(text[:80]), repr(body), repr(body[:80]), repr([text, body]),
                  traverse(text, max_string=80).render(), traverse(body, max_string=80).render()):
        assert "KKKK" not in shown
    assert body[0] == ord("s")  # an index is an int, as for bytes


def test_urls_and_headers_hide_the_query_and_the_values() -> None:
    url = RedactedURL(f"https://api.example.com/x?api_key={KEY}")
    assert repr(url) == "'https://api.example.com/x?***'" and str(url).endswith(KEY)
    headers = RedactedHeaders({"Authorization": f"Bearer {KEY}", "Accept": "*/*"})
    assert dict(headers)["Authorization"] == f"Bearer {KEY}"
    for shown in (repr(headers), str(headers), traverse(headers).render(),
                  repr(headers.copy())):
        assert "KKKK" not in shown and "Authorization" in shown


def test_reveal_only_unwraps_secrets() -> None:
    assert reveal(Secret("s")) == "s" and repr(reveal(Secret("s"))) == "'***'"
    assert reveal("plain") == "plain"


def test_drop_frames_clears_the_whole_chain() -> None:
    def inner(secret: str = KEY) -> None:
        raise OSError("reset")

    try:
        try:
            inner()
        except OSError as cause:
            raise ValueError("wrapped") from cause
    except ValueError as exc:
        drop_frames(exc.__cause__)
        text = "".join(traceback.TracebackException.from_exception(
            exc, capture_locals=True).format())
    assert "KKKK" not in text and "OSError: reset" in text

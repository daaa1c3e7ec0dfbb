"""egress.observability.logging: a record per event, fields in extra, redaction by construction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from egress import Pipeline, Retry, Secret, TransportError, attempts
from egress.events import CircuitStateChanged, FanOutSink
from egress.observability._redact import redact_headers, redact_text, redact_value
from egress.observability.logging import JsonFormatter, LoggingSink, RedactingFilter, install
from egress.testing import FakeClock

PLANTED = ("sk_live_51Hplanted", "4242424242424242", "4000 0566 5566 5556", "tok-planted-xyz",
           "whsec_planted", "987")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger("egress")
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def refused() -> None:
    raise TransportError("refused", sent=False)


def test_one_record_per_event_on_the_deciding_module_with_fields_in_extra(
        captured: Capture) -> None:
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(2)), clock=FakeClock(),
                        sink=LoggingSink())
    with pytest.raises(TransportError):
        pipeline.execute_sync("charge", refused)
    kinds = [(r.name, r.event, r.levelname) for r in captured.records]  # type: ignore[attr-defined]
    assert kinds == [("egress.policies.retry", "retry.scheduled", "INFO"),
                     ("egress.policies.retry", "retry.exhausted", "WARNING")]
    first = captured.records[0]
    assert (first.operation, first.attempt, first.error) == (  # type: ignore[attr-defined]
        "charge", 1, "TransportError")
    assert first.getMessage().startswith("retry.scheduled charge attempt=1 delay=")


def test_per_call_events_are_logged_only_when_asked(captured: Capture) -> None:
    clock = FakeClock()
    Pipeline(clock=clock, sink=LoggingSink()).run_sync(lambda: None)
    assert captured.records == []
    Pipeline(clock=clock, sink=LoggingSink(per_call=True)).execute_sync("x", lambda: None)
    assert [r.event for r in captured.records] == [  # type: ignore[attr-defined]
        "call.started", "attempt.started", "attempt.succeeded", "call.finished"]
    assert {r.name for r in captured.records} == {"egress.pipeline"}


def test_nothing_is_built_when_the_level_is_off(captured: Capture) -> None:
    logging.getLogger("egress").setLevel(logging.ERROR)
    sink = LoggingSink()
    sink.emit(CircuitStateChanged(operation="x", at=0.0, breaker="b", old="closed", new="open"))
    assert captured.records == []


def test_the_json_formatter_writes_one_parseable_line_with_the_fields() -> None:
    stream = io.StringIO()
    handler = install(logging.DEBUG, json=True, stream=stream)
    try:
        LoggingSink().emit(CircuitStateChanged(operation="GET /v1/x?api_key=sk_live_51Hplanted",
                                               at=1.0, breaker="http:api", old="closed",
                                               new="open", failure_rate=0.5))
    finally:
        logging.getLogger("egress").removeHandler(handler)
    [line] = stream.getvalue().splitlines()
    data = json.loads(line)
    assert data["event"] == "circuit.state_changed"
    assert data["logger"] == "egress.policies.breaker"
    assert data["level"] == "WARNING"
    assert (data["breaker"], data["new"], data["failure_rate"]) == ("http:api", "open", 0.5)
    assert data["operation"] == "GET /v1/x"  # the query string is dropped
    assert "sk_live" not in line


@pytest.mark.parametrize(("text", "leak"), [
    ("card 4242424242424242 declined", "4242424242424242"),
    ("card 4000 0566 5566 5556 declined", "4000 0566 5566 5556"),
    ("card 4000-0566-5566-5556", "4000-0566-5566-5556"),
    ("card[cvc]=987&x=1", "987"),
    ('{"cvc": "987"}', "987"),
    ("Authorization: Bearer tok-planted-xyz", "tok-planted-xyz"),
    ("key sk_live_51Hplanted used", "sk_live_51Hplanted"),
    ("whsec_planted", "whsec_planted"),
    ("GET https://api.example.com/v1/x?api_key=abc123", "abc123"),
    ("client_secret=s3cr3t-value", "s3cr3t-value"),
])
def test_secret_shapes_are_masked_in_any_string(text: str, leak: str) -> None:
    assert leak not in redact_text(text)


def test_ordinary_numbers_and_text_survive() -> None:
    text = "took 1700000000123 ns at 2026-11-30, 3 attempts, why? ok"
    assert redact_text(text) == text  # not Luhn-valid: a timestamp, not a card


def test_values_are_reduced_by_type() -> None:
    assert redact_value(Secret("sk_live_51Hplanted")) == "***"
    assert redact_value(b'{"card": "4242424242424242"}') == "<28 bytes>"
    assert redact_headers({"Authorization": "Bearer x", "Content-Type": "a/b",
                           "X-Api-Key": "k", "Retry-After": "3"}) == {
        "content-type": "a/b", "retry-after": "3"}


def test_the_redacting_filter_cleans_records_from_other_libraries() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("httpx.test-obs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning('HTTP Request: POST %s "%s"', "https://api.stripe.com/v1/x?api_key=tok-planted-xyz",
                    "card[number]=4242424242424242&card[cvc]=987",
                    extra={"headers": {"Authorization": "Bearer tok-planted-xyz"}})
        try:
            raise ValueError("sk_live_51Hplanted")
        except ValueError:
            log.exception("failed with whsec_planted")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    for secret in PLANTED:
        assert secret not in out, secret
    assert "POST https://api.stripe.com/v1/x" in out


def test_a_fan_out_of_logging_and_a_broken_sink_still_logs(captured: Capture) -> None:
    class Broken:
        def emit(self, event: object) -> None:
            raise RuntimeError("x")

    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(2)), clock=FakeClock(),
                        sink=FanOutSink([Broken(), LoggingSink()]))
    with pytest.raises(TransportError):
        pipeline.run_sync(refused)
    assert "retry.exhausted" in [getattr(r, "event", None) for r in captured.records]

"""Stripe's retry rules and error mapping: the one place, tested as a table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from egress.adapters.stripe._errors import (
    AttemptLog,
    attempt_log,
    parse_stripe_error,
    redact_message,
    stripe_retry_hook,
    to_domain_error,
)
from egress.errors import (
    AttemptTimeoutError,
    AuthenticationFailed,
    CircuitOpenError,
    DeadlineExceededError,
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
    ResponseError,
    StatusError,
    TransportError,
)
from egress.http import Headers, RequestInfo, Response, Safety

KEYED = RequestInfo("POST", "https://api.stripe.com/v1/payment_intents",
                    "POST /v1/payment_intents", Safety.KEYED, "k-1")
UNKEYED = RequestInfo("POST", "https://api.stripe.com/v1/payment_intents",
                      "POST /v1/payment_intents", Safety.UNSAFE, None)
READ = RequestInfo("GET", "https://api.stripe.com/v1/payment_intents/pi_1",
                   "GET /v1/payment_intents/{intent}", Safety.SAFE, None)


def status(code: int, error: dict[str, Any] | None = None, *,
           should_retry: str | None = None, retry_after: float | None = None,
           body: bytes | None = None, replayed: bool = False) -> StatusError:
    headers = [("Request-Id", "req_123")]
    if replayed:
        headers.append(("Idempotent-Replayed", "true"))
    if should_retry is not None:
        headers.append(("Stripe-Should-Retry", should_retry))
    content = body if body is not None else json.dumps({"error": error or {}}).encode()
    response = Response(code, Headers(headers), content)
    return StatusError(code, request_id="req_123", retry_after=retry_after,
                       headers=tuple(headers), response=response)


DECLINE = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
           "message": "Your card has insufficient funds."}


# -- retry hook ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "verdict"), [
    (status(500), True),
    (status(502), True),
    (status(503), True),
    (status(500, should_retry="false"), False),  # Stripe-Should-Retry: false wins
    (status(503, should_retry="false"), False),
    (status(400, should_retry="true"), True),  # ... and true wins too
    (status(409, {"type": "invalid_request_error", "code": "idempotency_key_in_use"}), True),
    (status(429, {"type": "invalid_request_error", "code": "lock_timeout"}), True),
    (status(429, {"type": "invalid_request_error", "code": "rate_limit"}), True),
    (status(429, {}, retry_after=2.0), True),
    (status(429, {"code": "rate_limit"}, should_retry="false"), False),
    (status(402, DECLINE), False),  # a decline is never retried
    (status(402, DECLINE, should_retry="true"), False),  # not even when told to
    (status(400, {"type": "idempotency_error"}), False),
    (status(400, {"type": "invalid_request_error", "param": "amount"}), False),
    (status(401), False),
    (status(403), False),
    (status(404, {"code": "resource_missing"}), False),
])
def test_status_rules(error: StatusError, verdict: bool) -> None:
    assert stripe_retry_hook(error, KEYED) is verdict


def test_transport_errors_use_the_seams_defaults() -> None:
    assert stripe_retry_hook(TransportError("reset", sent=True), KEYED) is None
    assert stripe_retry_hook(AttemptTimeoutError("slow"), KEYED) is None
    assert stripe_retry_hook(ResponseError("cut", reason="truncated"), KEYED) is None


def test_a_post_without_a_key_is_never_forced_into_a_retry() -> None:
    assert stripe_retry_hook(status(500), UNKEYED) is None
    assert stripe_retry_hook(status(409), UNKEYED) is None
    assert stripe_retry_hook(status(500), READ) is True


def test_the_hook_logs_which_attempts_may_have_been_processed() -> None:
    log = AttemptLog()
    token = attempt_log.set(log)
    try:
        stripe_retry_hook(TransportError("refused", sent=False), KEYED)
        assert log.attempts == 1 and not log.ambiguous
        stripe_retry_hook(status(429, {"code": "lock_timeout"}), KEYED)
        assert not log.ambiguous
        stripe_retry_hook(TransportError("reset", sent=True), KEYED)
        assert log.ambiguous and log.attempts == 3
    finally:
        attempt_log.reset(token)


# -- mapping ------------------------------------------------------------------------------------


def domain(exc: BaseException, **kw: Any) -> Any:
    kw.setdefault("operation", "create")
    kw.setdefault("changes_state", True)
    kw.setdefault("reference", "order-1")
    kw.setdefault("idempotency_key", "k-1")
    return to_domain_error(exc, **kw)


def test_decline() -> None:
    error = domain(status(402, DECLINE))
    assert isinstance(error, PaymentDeclined)
    assert error.decline_code == "insufficient_funds"
    assert error.code == "card_declined"
    assert "insufficient funds" in str(error) and "req_123" in str(error)


def test_idempotency_error_is_a_mismatch() -> None:
    error = domain(status(400, {"type": "idempotency_error",
                                "message": "Keys for idempotent requests can only be used "
                                           "with the same parameters they were first used "
                                           "with."}))
    assert isinstance(error, IdempotencyMismatch)


@pytest.mark.parametrize(("exc", "kind"), [
    (status(400, {"type": "invalid_request_error", "param": "amount"}), InvalidPaymentRequest),
    (status(404, {"type": "invalid_request_error", "code": "resource_missing"}),
     InvalidPaymentRequest),
    (status(401, {"type": "invalid_request_error"}), AuthenticationFailed),
    (status(403, {"type": "invalid_request_error"}), AuthenticationFailed),
    (status(429, {"code": "rate_limit"}, retry_after=3.0), ProviderUnavailable),
    (status(500), OutcomeUnknown),  # Stripe may have acted (a saved 500 replays as 500)
    (status(503, should_retry="false"), OutcomeUnknown),
    (status(409, {"code": "idempotency_key_in_use"}), OutcomeUnknown),
    (TransportError("refused", sent=False), ProviderUnavailable),
    (TransportError("reset", sent=True), OutcomeUnknown),
    (AttemptTimeoutError("slow"), OutcomeUnknown),
    (DeadlineExceededError("late"), OutcomeUnknown),
    (ResponseError("cut", reason="truncated"), OutcomeUnknown),
    (CircuitOpenError("stripe", retry_after=5.0), ProviderUnavailable),
])
def test_post_mapping(exc: BaseException, kind: type[Exception]) -> None:
    error = domain(exc)
    assert type(error) is kind
    if isinstance(error, OutcomeUnknown):
        assert (error.idempotency_key, error.reference, error.operation) == (
            "k-1", "order-1", "create")


def test_params_and_retry_after_are_kept() -> None:
    invalid = domain(status(400, {"type": "invalid_request_error", "param": "amount"}))
    assert isinstance(invalid, InvalidPaymentRequest) and invalid.param == "amount"
    limited = domain(status(429, {"code": "rate_limit"}, retry_after=3.0))
    assert isinstance(limited, ProviderUnavailable) and limited.retry_after == 3.0
    circuit = domain(CircuitOpenError("stripe", retry_after=5.0))
    assert circuit.retry_after == 5.0


@pytest.mark.parametrize("exc", [
    TransportError("refused", sent=False), status(429, {"code": "rate_limit"}),
    status(401), CircuitOpenError("stripe"),
])
def test_after_an_ambiguous_attempt_nothing_proves_absence(exc: BaseException) -> None:
    # A retry that ends in "nothing was sent" says nothing about the earlier attempt.
    assert isinstance(domain(exc, ambiguous=True), OutcomeUnknown)


def test_after_an_ambiguous_attempt_only_stripes_replay_is_a_decision() -> None:
    # Stripe's replay of the key's stored outcome is proof of what the key did.
    assert isinstance(domain(status(402, DECLINE, replayed=True), ambiguous=True),
                      PaymentDeclined)
    assert isinstance(domain(status(400, {"type": "invalid_request_error"}, replayed=True),
                             ambiguous=True), InvalidPaymentRequest)
    # Any other answer says nothing about the earlier attempt, which may have charged.
    for code in (400, 402, 404, 408, 413, 422):
        assert isinstance(domain(status(code, DECLINE), ambiguous=True), OutcomeUnknown)
        assert isinstance(domain(status(code, body=b"<html>edge</html>"), ambiguous=True),
                          OutcomeUnknown)
    assert isinstance(domain(status(400, {"type": "idempotency_error"}), ambiguous=True),
                      OutcomeUnknown)


@pytest.mark.parametrize("exc", [
    status(400, body=b"<html>400 Bad Request</html>"),
    status(402, body=b'{"error": "payment required"}'),  # an error, but not Stripe's object
    status(413, body=b'{"message": "too large"}'),
    status(404, {"type": "invalid_request_error"}, replayed=False),
])
def test_an_answer_that_is_not_a_stripe_error_object_is_never_a_decision(
        exc: StatusError) -> None:
    if exc.status_code == 404:  # well-formed body, but no Request-Id: not Stripe speaking
        exc = StatusError(404, request_id=None, headers=(),
                          response=Response(404, Headers([]), exc.response.content))
    for changes_state, kind in ((True, OutcomeUnknown), (False, ProviderUnavailable)):
        error = to_domain_error(exc, operation="create", changes_state=changes_state,
                                idempotency_key="k-1")
        assert isinstance(error, kind)  # the edge may have forwarded the POST: unknown


@pytest.mark.parametrize("exc", [status(500), TransportError("reset", sent=True),
                                 DeadlineExceededError("late"), status(409)])
def test_reads_are_never_outcome_unknown(exc: BaseException) -> None:
    error = to_domain_error(exc, operation="get", changes_state=False)
    assert isinstance(error, ProviderUnavailable)


def test_payment_errors_pass_through() -> None:
    original = PaymentDeclined("no")
    assert domain(original) is original


# -- safe facts only ----------------------------------------------------------------------------


def test_messages_are_redacted() -> None:
    text = redact_message(
        "card 4242 4242 4242 4242 key sk_live_abcdefghijkl secret whsec_zzzzzz "
        "client pi_123_secret_abc cvc 123\x00")
    for leaked in ("4242 4242", "sk_live_abc", "whsec_zzz", "pi_123_secret_abc", "\x00"):
        assert leaked not in text
    assert "cvc 123" in text  # a short number is not card-shaped
    assert len(redact_message("x" * 10_000)) == 300


def test_error_fields_are_identifiers_or_dropped() -> None:
    error = parse_stripe_error(status(400, {"type": "invalid_request_error",
                                            "param": "metadata[a b]\n<script>",
                                            "code": "x" * 500}))
    assert error.param is None and error.code is None and error.type == "invalid_request_error"


def test_a_non_json_error_body_still_maps() -> None:
    error = domain(status(502, body=b"<html>bad gateway</html>"))
    assert isinstance(error, OutcomeUnknown)
    assert isinstance(domain(status(400, body=b"oops")), OutcomeUnknown)


def test_card_numbers_in_stripe_messages_never_reach_the_caller() -> None:
    error = domain(status(402, dict(DECLINE, message="Card 4000000000009995 declined")))
    assert "4000000000009995" not in str(error) and "4000000000009995" not in repr(error)


def test_key_in_use_is_typed_idempotency_error_but_retried() -> None:
    in_use = status(409, {"type": "idempotency_error", "code": "idempotency_key_in_use"})
    assert stripe_retry_hook(in_use, KEYED) is True
    assert isinstance(domain(in_use), OutcomeUnknown)
    told_not_to = status(409, {"type": "idempotency_error"}, should_retry="false")
    assert stripe_retry_hook(told_not_to, KEYED) is False

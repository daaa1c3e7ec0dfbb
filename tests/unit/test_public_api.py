"""The public surface is deliberate: adding or removing a name must be a visible decision.

Each package's ``__all__`` is pinned here. Applications use ``egress``, ``egress.http``,
``egress.payments``, ``egress.adapters.stripe`` and ``egress.testing``; code that extends egress
(a custom policy or clock) uses ``egress.extend``.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable

import pytest

import egress
import egress.errors
import egress.http

PUBLIC = {
    "egress": {
        "AttemptTimeoutError", "Backoff", "BreakerRegistry", "Bulkhead", "BulkheadFullError",
        "CallbackSink", "CircuitBreaker", "CircuitOpenError", "CircuitState", "Clock",
        "ConfigurationError", "CountWindow", "DeadlineExceededError", "EgressError", "Event",
        "EventSink", "Jitter", "Pipeline", "RateLimitedError", "RateLimiter", "RejectedError",
        "ResponseError", "Retry", "RetryBudget", "RetryBudgetExhaustedError", "Secret",
        "StatusError", "Stop", "TimeWindow", "Timeout", "TokenRetryBudget", "TransportError",
        "UnsafeRequestError", "UpstreamError", "__version__", "attempts", "current_context",
        "elapsed", "status", "time_remaining",
    },
    "egress.extend": {
        "SYSTEM_CLOCK", "AsyncOp", "AsyncStep", "CallContext", "Clock", "Policy", "SyncOp",
        "SyncStep", "SystemClock", "TimerHandle",
    },
    "egress.payments": {
        "AuthenticationFailed", "CURRENCY_EXPONENTS", "CancellationReason", "EventDeduplicator",
        "IdempotencyMismatch", "IdempotencyStore", "InvalidPaymentRequest", "Money",
        "OutcomeUnknown", "Payment", "PaymentAuthorized", "PaymentCanceled", "PaymentCreated",
        "PaymentDeclined", "PaymentError", "PaymentEvent", "PaymentFailed", "PaymentProcessing",
        "PaymentRequest", "PaymentRequiresAction", "PaymentService", "PaymentStatus",
        "PaymentSucceeded", "ProviderUnavailable", "Refund", "RefundReason", "RefundStatus",
        "RefundUpdated", "SyncPaymentService", "UnhandledEvent", "currency_exponent",
    },
    "egress.http": {
        "ASYNC_BACKENDS", "ApiClient", "ApiKeyAuth", "Auth", "BasicAuth", "BearerAuth",
        "DEFAULT_ASYNC_BACKEND", "DEFAULT_DEADLINE", "DEFAULT_SYNC_BACKEND", "Headers",
        "HmacSigner",
        "OAuth2ClientCredentials", "RateLimitInfo", "RequestInfo", "ResilientTransport",
        "Response", "RetryHook", "SYNC_BACKENDS", "Safety", "SignableRequest", "SigningAuth",
        "SyncApiClient", "TRANSIENT_STATUSES", "Timeouts", "default_retryable",
        "parse_rate_limit", "parse_retry_after", "retry_on", "safety_of", "server_hint",
    },
    "egress.testing": {
        "FakeClock", "FakeStripe", "InMemoryPayments", "PaymentFault", "RecordingSink",
        "SyncInMemoryPayments", "fake_stripe_fixture", "isolated_state",
    },
    "egress.adapters.stripe": {
        "DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "DEFAULT_DEADLINE", "DEFAULT_TOLERANCE",
        "LIVE_RATE_LIMIT", "SIGNATURE_HEADER", "StripePayments", "StripeWebhooks",
        "SyncStripePayments",
        "TEST_RATE_LIMIT", "parse_event", "sign_payload", "stripe_retry_hook",
        "verify_signature", "verify_webhook",
    },
    "egress.stores": {"MEMORY_STORE", "MemoryStore", "StateStore"},
}

# Names that left a public list but still import, so code written against them keeps working.
KEPT_FOR_OLD_CODE = {
    "egress": {"CallContext", "Policy", "SystemClock"},
    "egress.payments": {
        "DEFAULT_MAX_KEY_AGE", "DEFAULT_SETTLE_AFTER", "PROVIDER_KEY_LIFETIME",
        "IdempotencyKeeper", "IdempotencyRecord", "KeyedOperation", "RecordState", "derive_key",
        "request_fingerprint",
    },
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("package", sorted(KEPT_FOR_OLD_CODE))
def test_names_moved_out_of_the_public_list_still_import(package: str) -> None:
    module = importlib.import_module(package)
    for name in KEPT_FOR_OLD_CODE[package]:
        assert name not in module.__all__
        assert getattr(module, name) is not None, name


def test_extension_names_are_the_same_objects_from_either_place() -> None:
    import egress.extend

    assert egress.CallContext is egress.extend.CallContext  # type: ignore[attr-defined]
    assert egress.Policy is egress.extend.Policy  # type: ignore[attr-defined]


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = egress.no_such_name  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = egress.http.no_such_name  # type: ignore[attr-defined]


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert egress.__version__ == version("egress")
    assert "__version__" in dir(egress)


def test_clients_send_the_version_in_their_user_agent() -> None:
    default = egress.http.SyncApiClient("https://api.example.com")
    assert default._core.default_headers["User-Agent"] == f"egress/{egress.__version__}"
    default.close()
    custom = egress.http.SyncApiClient("https://api.example.com", user_agent="shop/2")
    assert custom._core.default_headers["User-Agent"] == "shop/2"
    custom.close()


def _modules_after(statement: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{statement}; import sys; "
                          "print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_import_egress_loads_no_event_loop_and_no_http_library() -> None:
    loaded = _modules_after("import egress")
    assert not {"asyncio", "httpx", "aiohttp", "rich"} & loaded


def test_the_pytest_plugin_loads_nothing_heavy() -> None:
    # It is imported by every pytest run of every project that installs egress.
    loaded = _modules_after("import egress.testing.pytest_plugin")
    assert not {"asyncio", "aiohttp", "egress.payments", "egress.policies"} & loaded


def test_the_http_seam_loads_only_the_backend_in_use() -> None:
    loaded = _modules_after("import egress.http")
    assert not {"httpx", "aiohttp", "rich", "importlib.metadata"} & loaded
    loaded = _modules_after("from egress.http import ApiClient; "
                            "ApiClient('https://api.example.com')")
    assert "aiohttp" in loaded and "httpx" not in loaded


def test_every_error_descends_from_egress_error() -> None:
    for name in egress.errors.__all__:
        cls = getattr(egress.errors, name)
        assert issubclass(cls, egress.errors.EgressError), name


def test_deadline_and_attempt_timeouts_are_timeouts() -> None:
    assert issubclass(egress.DeadlineExceededError, TimeoutError)
    assert issubclass(egress.AttemptTimeoutError, TimeoutError)
    assert issubclass(egress.AttemptTimeoutError, egress.TransportError)
    assert egress.AttemptTimeoutError("x").sent is True


@pytest.mark.parametrize("reach", [
    lambda: egress.http.SyncApiClient("https://api.example.com", backend="httpx"),
    lambda: egress.http.ResilientTransport,
], ids=["backend", "transport"])
def test_without_httpx_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                 reach: Callable[[], object]) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # as if not installed
    for name in ("egress.http._httpx", "egress.http.transport"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delitem(egress.http.__dict__, "ResilientTransport", raising=False)
    with pytest.raises(egress.ConfigurationError, match=r"egress\[httpx\]"):
        reach()


def test_one_thing_has_one_name() -> None:
    """Issue 11: a call's default deadline is defined once (the Stripe adapter's is the same
    value by the same name), and FakeStripe's request identifiers and decoded forms no longer
    share names with egress.http's RequestInfo and Params."""
    import egress.adapters.stripe
    import egress.http
    from egress.testing.fake_stripe import _account, _forms

    assert egress.adapters.stripe.DEFAULT_DEADLINE is egress.http.DEFAULT_DEADLINE
    assert not hasattr(_account, "RequestInfo") and not hasattr(_forms, "Params")

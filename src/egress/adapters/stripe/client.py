"""StripePayments and SyncStripePayments: the payment port over Stripe's PaymentIntents API.

Every decision lives once, in :class:`~egress.adapters.stripe._flow.StripeFlow`: the wire format
(``_requests``/``_parse``), the amounts (``_amounts``), the error mapping (``_errors``), and the
:class:`~egress.payments.IdempotencyKeeper`, which stores each changing call's key before the
first byte is sent. The two classes here are its faces: they validate the settings (once, in
:class:`_StripeFace`), build the HTTP client (``ApiClient`` or ``SyncApiClient``, with Stripe's
retry rules as its ``retry_hook``), and pump the flow: the async face awaits it, the sync face
runs it with :func:`~egress.payments._drive.drive` over blocking I/O.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import Pipeline
from egress._secret import Secret
from egress.adapters.stripe import _requests as wire
from egress.adapters.stripe._errors import stripe_retry_hook
from egress.adapters.stripe._flow import StripeFlow, StripeIo
from egress.adapters.stripe._requests import DEFAULT_REFERENCE_KEY
from egress.errors import ConfigurationError
from egress.events import NULL_SINK, EventSink
from egress.http import DEFAULT_DEADLINE, ApiClient, BearerAuth, Response, SyncApiClient, Timeouts
from egress.http._url import Params
from egress.payments._drive import AsyncFace, SyncFace, blocking_store
from egress.payments.idempotency import (
    DEFAULT_MAX_KEY_AGE,
    DEFAULT_SETTLE_AFTER,
    IdempotencyStore,
)
from egress.payments.keeper import IdempotencyKeeper
from egress.payments.service import PaymentService
from egress.policies.ratelimit import RateLimiter
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_SCAN_PAGES",
    "LIVE_RATE_LIMIT",
    "TEST_RATE_LIMIT",
    "StripePayments",
    "SyncStripePayments",
]

DEFAULT_BASE_URL: Final = "https://api.stripe.com"
#: The pinned ``Stripe-Version``: the version whose shapes the adapter parses and whose OpenAPI
#: description its requests are tested against (``latest_charge``, no ``charges`` list; explicit
#: ``payment_method_types`` default). Change it only after reading Stripe's upgrade notes.
DEFAULT_API_VERSION: Final = "2024-06-20"
#: Stripe's global limits: 25 requests/s in test mode, 100 in live mode.
TEST_RATE_LIMIT: Final = 25.0
LIVE_RATE_LIMIT: Final = 100.0
#: Pages of 100 PaymentIntents reconciliation may list to prove a payment absent.
DEFAULT_MAX_SCAN_PAGES: Final = 10

_TEST_PREFIXES = ("sk_test_", "rk_test_")
_KEY_PREFIXES = ("sk_live_", "rk_live_", *_TEST_PREFIXES)


class _StripeFace:
    """The settings of both faces, validated once; each face adds its HTTP client and pumps.

    :class:`StripePayments` is the async face (:class:`~egress.payments.PaymentService`),
    :class:`SyncStripePayments` the sync one (:class:`~egress.payments.SyncPaymentService`).

    ====================  ===================  ==============================================
    setting               default              meaning
    ====================  ===================  ==============================================
    ``api_key``           (required)           ``sk_...``/``rk_...`` key, a ``Secret`` or str
    ``store``             in memory            IdempotencyStore, or a path: SQLite (durable)
    ``base_url``          api.stripe.com       Stripe's API origin (a fake in tests)
    ``api_version``       ``2024-06-20``       the pinned ``Stripe-Version`` header
    ``rate_limit``        ``"auto"``           25/s (test keys) or 100/s (live); a number;
                                               ``None`` for none
    ``deadline``          60.0                 seconds per call, retries included
    ``timeouts``          ``Timeouts()``       per attempt (connect, read, total, ...)
    ``pipeline``          the HTTP default     bulkhead, retry (Stripe's hook), breaker, limit
    ``scope``             ``stripe-<mode>``    namespace of idempotency keys (one per account)
    ``reference_key``     ``"reference"``      metadata key that carries the reference
    ``payment_method_``   ``("card",)``        ``payment_method_types`` of new PaymentIntents
    ``types``
    ``max_key_age``       82800.0 (23 h)       older keys are never re-sent blindly
    ``settle_after``      600.0                absence is trusted this long after a try
    ``max_scan_pages``    10                   list pages reconcile may read for a proof
    ``check_new_``        ``True``             look a reference with no local record up once
    ``references``                             before its first attempt (a lost store)
    ``backend``           ``None``             HTTP wire backend; None: ``"aiohttp"`` (async
                                               face) or ``"stdlib"`` (sync face)
    ``clock``/``sink``    system / none        time source and event sink
    ====================  ===================  ==============================================
    """

    _DEFAULT_BACKEND: ClassVar[str]
    _client: ApiClient | SyncApiClient

    def __init__(
        self,
        api_key: str | Secret,
        *,
        store: IdempotencyStore | str | os.PathLike[str] | None = None,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        rate_limit: float | Literal["auto"] | None = "auto",
        deadline: float = DEFAULT_DEADLINE,
        timeouts: Timeouts | None = None,
        pipeline: Pipeline | None = None,
        scope: str | None = None,
        reference_key: str = DEFAULT_REFERENCE_KEY,
        payment_method_types: tuple[str, ...] = wire.DEFAULT_PAYMENT_METHOD_TYPES,
        max_key_age: float = DEFAULT_MAX_KEY_AGE,
        settle_after: float = DEFAULT_SETTLE_AFTER,
        max_scan_pages: int = DEFAULT_MAX_SCAN_PAGES,
        check_new_references: bool = True,
        backend: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
    ) -> None:
        name = type(self).__name__  # errors name the face the caller built
        try:
            key = Secret(api_key)
        except ConfigurationError:
            raise ConfigurationError(f"{name}: api_key must be a non-empty string or "
                                     "Secret") from None
        if not any(key.startswith(prefix) for prefix in _KEY_PREFIXES):
            raise ConfigurationError(f"{name}: api_key must be a secret or restricted "
                                     "key (sk_live_, sk_test_, rk_live_ or rk_test_)")
        self.test_mode = any(key.startswith(prefix) for prefix in _TEST_PREFIXES)
        mode = "test" if self.test_mode else "live"
        if not isinstance(api_version, str) or not api_version or not api_version.isprintable():
            raise ConfigurationError(f"{name}: api_version must be a version string")
        if not (isinstance(deadline, int | float) and math.isfinite(deadline) and deadline > 0):
            raise ConfigurationError(f"{name}: deadline must be > 0, got {deadline!r}")
        if (isinstance(max_scan_pages, bool) or not isinstance(max_scan_pages, int)
                or max_scan_pages < 1):
            raise ConfigurationError(f"{name}: max_scan_pages must be an integer >= 1")
        if not isinstance(reference_key, str) or not 0 < len(reference_key) <= 40:
            raise ConfigurationError(f"{name}: reference_key must be 1-40 characters")
        if (not isinstance(payment_method_types, tuple) or not payment_method_types
                or not all(isinstance(t, str) and t for t in payment_method_types)):
            raise ConfigurationError(f"{name}: payment_method_types must be a non-empty "
                                     "tuple of names such as ('card',)")
        self.payment_method_types = payment_method_types
        self.api_version = api_version
        self.reference_key = reference_key
        self.deadline = float(deadline)
        self.max_scan_pages = max_scan_pages
        self.check_new_references = bool(check_new_references)
        self.clock = clock
        self.sink = sink
        if rate_limit == "auto":
            rate: float | None = TEST_RATE_LIMIT if self.test_mode else LIVE_RATE_LIMIT
        elif rate_limit is None:
            rate = None
        elif isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
            rate = float(rate_limit)
        else:
            raise ConfigurationError(f"{name}: rate_limit must be 'auto', a number of "
                                     "requests per second, or None")
        limiter = None if rate is None else RateLimiter(
            rate, burst=max(1, int(rate)), name=f"stripe-{mode}", clock=clock, sink=sink)
        self.rate_limiter = limiter
        self.store = _store(store, name)
        # A store opened here from a path is this client's to close; one passed in is the caller's.
        self._own_store = self.store if isinstance(store, str | os.PathLike) else None
        self._keeper: IdempotencyKeeper = IdempotencyKeeper(
            self._face_store(self.store), scope=scope or f"stripe-{mode}", clock=clock,
            sink=sink, max_age=max_key_age, settle_after=settle_after)
        io = self._connect(base_url, dict(
            auth=BearerAuth(key), headers={"Stripe-Version": api_version},
            pipeline=pipeline, retry_hook=stripe_retry_hook, rate_limiter=limiter,
            backend=backend or self._DEFAULT_BACKEND, timeouts=timeouts or Timeouts(),
            deadline=self.deadline,
            auto_idempotency_key=True,  # Stripe honours Idempotency-Key on every POST
            clock=clock, sink=sink))
        self._flow: PaymentService = StripeFlow(
            io, keeper=self._keeper, reference_key=reference_key,
            payment_method_types=payment_method_types, deadline=self.deadline,
            max_scan_pages=max_scan_pages, check_new_references=self.check_new_references,
            clock=clock, sink=sink)

    def _face_store(self, store: IdempotencyStore) -> IdempotencyStore:
        """The store as this face's keeper sees it."""
        raise NotImplementedError

    def _connect(self, base_url: str, settings: dict[str, Any]) -> StripeIo:
        """Build this face's HTTP client from ``settings``; return the flow's I/O port."""
        raise NotImplementedError

    def __repr__(self) -> str:
        mode = "test" if self.test_mode else "live"
        return (f"{type(self).__name__}(mode={mode!r}, base_url={self._client.base_url!r}, "
                f"store={self.store!r})")

    @property
    def scope(self) -> str:
        return self._keeper.scope

    def _close_own_store(self) -> None:
        if isinstance(self._own_store, SqliteIdempotencyStore):
            self._own_store.close()  # its file handles: else they outlive the client


class StripePayments(_StripeFace, AsyncFace):
    """:class:`~egress.payments.PaymentService` backed by Stripe, over :class:`ApiClient`.

    Settings and defaults: the table of ``_StripeFace`` (also in ``docs/stripe.md``);
    ``backend`` defaults to ``"aiohttp"``. Use ``async with StripePayments(...) as payments:``
    or call :meth:`aclose`.
    """

    _DEFAULT_BACKEND = "aiohttp"
    _client: ApiClient

    def _face_store(self, store: IdempotencyStore) -> IdempotencyStore:
        return store

    def _connect(self, base_url: str, settings: dict[str, Any]) -> StripeIo:
        self._client = ApiClient(base_url, **settings)
        return _AsyncIo(self._client, self.clock)

    @property
    def client(self) -> ApiClient:
        """The underlying HTTP client (its pipeline, its backend)."""
        return self._client

    async def __aenter__(self) -> StripePayments:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()
        self._close_own_store()


class SyncStripePayments(_StripeFace, SyncFace):
    """:class:`~egress.payments.SyncPaymentService` backed by Stripe, over
    :class:`SyncApiClient`: for Django, Flask, Celery workers and other sync code.

    The same settings, defaults and decisions as :class:`StripePayments` (one flow runs both;
    ``backend`` defaults to ``"stdlib"``). The idempotency store needs sync methods: the
    in-memory default, a path (SQLite), a ``SqliteIdempotencyStore`` or a
    ``RedisIdempotencyStore`` do. Thread-safe. Use
    ``with SyncStripePayments(...) as payments:`` or call :meth:`close`.
    """

    _DEFAULT_BACKEND = "stdlib"
    _client: SyncApiClient

    def _face_store(self, store: IdempotencyStore) -> IdempotencyStore:
        return blocking_store(store, "SyncStripePayments")

    def _connect(self, base_url: str, settings: dict[str, Any]) -> StripeIo:
        self._client = SyncApiClient(base_url, **settings)
        return _BlockingIo(self._client, self.clock)

    @property
    def client(self) -> SyncApiClient:
        """The underlying HTTP client (its pipeline, its backend)."""
        return self._client

    def __enter__(self) -> SyncStripePayments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()
        self._close_own_store()


class _AsyncIo:
    """The async face's port: ApiClient's own calls and the clock's sleep, as they are."""

    __slots__ = ("get", "post", "sleep")

    def __init__(self, client: ApiClient, clock: Clock) -> None:
        self.post = client.post
        self.get = client.get
        self.sleep = clock.sleep


class _BlockingIo:
    """The sync face's port: each coroutine blocks on SyncApiClient (or the clock's
    ``sleep_sync``) and returns without suspending, as :func:`drive` requires."""

    __slots__ = ("_client", "_clock")

    def __init__(self, client: SyncApiClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock

    async def post(self, path: str, *, content: bytes | None, headers: Mapping[str, str],
                   path_params: Mapping[str, object] | None, idempotency_key: str,
                   deadline: float) -> Response:
        return self._client.post(path, content=content, headers=headers,
                                 path_params=path_params, idempotency_key=idempotency_key,
                                 deadline=deadline)

    async def get(self, path: str, *, params: Params,
                  path_params: Mapping[str, object] | None) -> Response:
        return self._client.get(path, params=params, path_params=path_params)

    async def sleep(self, seconds: float) -> None:
        self._clock.sleep_sync(seconds)


def _store(store: IdempotencyStore | str | os.PathLike[str] | None,
           name: str) -> IdempotencyStore:
    if store is None:
        return MemoryIdempotencyStore()
    if isinstance(store, str | os.PathLike):
        return SqliteIdempotencyStore(store)
    if not isinstance(store, IdempotencyStore):
        raise ConfigurationError(f"{name}: store must be an IdempotencyStore or a path")
    return store

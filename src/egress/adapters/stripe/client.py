"""StripePayments: the PaymentService port over Stripe's PaymentIntents API.

Every call goes through :class:`egress.http.ApiClient` (deadline, retries, breaker, rate limit)
with Stripe's retry rules as its ``retry_hook``; every changing call goes through the
:class:`~egress.payments.IdempotencyKeeper`, which stores its key before the first byte is sent.
The wire format (``_requests``/``_parse``), the amounts (``_amounts``) and the error mapping
(``_errors``) are pure and tested on their own.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import Pipeline
from egress._secret import Secret
from egress.adapters.stripe import _requests as wire
from egress.adapters.stripe._errors import (
    AttemptLog,
    attempt_log,
    stripe_retry_hook,
    to_domain_error,
)
from egress.adapters.stripe._parse import (
    parse_json,
    parse_list,
    parse_payment_intent,
    parse_refund,
)
from egress.adapters.stripe._requests import DEFAULT_REFERENCE_KEY, GENERATION_KEY, WireRequest
from egress.errors import (
    ConfigurationError,
    EgressError,
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    ProviderUnavailable,
    ResponseError,
    StatusError,
)
from egress.events import NULL_SINK, EventSink, emit_safely
from egress.http import ApiClient, BearerAuth, Response, Timeouts
from egress.payments.idempotency import (
    DEFAULT_MAX_KEY_AGE,
    DEFAULT_SETTLE_AFTER,
    IdempotencyRecord,
    IdempotencyStore,
    IdempotentReplay,
    key_generation,
)
from egress.payments.keeper import PROVEN_NO_EFFECT, IdempotencyKeeper, KeyedCall, Proof
from egress.payments.models import (
    CancellationReason,
    Payment,
    PaymentRequest,
    PaymentStatus,
    Refund,
    RefundReason,
    check_reference,
    latest_for_reference,
    request_fingerprint,
)
from egress.payments.money import Money
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
]

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "https://api.stripe.com"
#: The pinned ``Stripe-Version``: the version whose shapes the adapter parses and whose OpenAPI
#: description its requests are tested against (``latest_charge``, no ``charges`` list; explicit
#: ``payment_method_types`` default). Change it only after reading Stripe's upgrade notes.
DEFAULT_API_VERSION: Final = "2024-06-20"
#: Stripe's global limits: 25 requests/s in test mode, 100 in live mode.
TEST_RATE_LIMIT: Final = 25.0
LIVE_RATE_LIMIT: Final = 100.0
#: Seconds for one logical call, every attempt and backoff included.
DEFAULT_DEADLINE: Final = 60.0
#: Pages of 100 PaymentIntents reconciliation may list to prove a payment absent.
DEFAULT_MAX_SCAN_PAGES: Final = 10
#: Margin for the clock difference between this host and Stripe when listing by ``created``.
CLOCK_SKEW_MARGIN: Final = 300.0
#: Search answering 4xx means the account has no search (not every region does): the adapter
#: falls back to the consistent list scan and asks search again only after this many seconds.
SEARCH_RETRY_AFTER: Final = 3600.0
#: Answers of the search endpoint that mean "no search here", not "your request is wrong".
_SEARCH_UNAVAILABLE = frozenset({400, 403, 404, 405, 410, 501})
#: Waiting for another in-flight attempt of the same key (Stripe's 409): first pause, growth
#: factor and longest pause, all bounded by the call's deadline.
KEY_IN_USE_FIRST_WAIT: Final = 0.25
KEY_IN_USE_MAX_WAIT: Final = 4.0

_log = logging.getLogger("egress.stripe")

_TEST_PREFIXES = ("sk_test_", "rk_test_")
_KEY_PREFIXES = ("sk_live_", "rk_live_", *_TEST_PREFIXES)
_HAPPENED: Mapping[str, Callable[[Payment], bool]] = {
    "confirm": lambda p: p.status not in (PaymentStatus.REQUIRES_PAYMENT_METHOD,
                                          PaymentStatus.REQUIRES_CONFIRMATION),
    "capture": lambda p: p.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING),
    "cancel": lambda p: p.status is PaymentStatus.CANCELED,
}


class StripePayments:
    """:class:`~egress.payments.PaymentService` backed by Stripe.

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
    ``backend``           ``"aiohttp"``        ApiClient wire backend
    ``clock``/``sink``    system / none        time source and event sink
    ====================  ===================  ==============================================

    Use ``async with StripePayments(...) as payments:`` or call :meth:`aclose`.
    """

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
        backend: str = "aiohttp",
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
    ) -> None:
        try:
            key = Secret(api_key)
        except ConfigurationError:
            raise ConfigurationError("StripePayments: api_key must be a non-empty string or "
                                     "Secret") from None
        if not any(key.startswith(prefix) for prefix in _KEY_PREFIXES):
            raise ConfigurationError("StripePayments: api_key must be a secret or restricted "
                                     "key (sk_live_, sk_test_, rk_live_ or rk_test_)")
        self.test_mode = any(key.startswith(prefix) for prefix in _TEST_PREFIXES)
        mode = "test" if self.test_mode else "live"
        if not isinstance(api_version, str) or not api_version or not api_version.isprintable():
            raise ConfigurationError("StripePayments: api_version must be a version string")
        if not (isinstance(deadline, int | float) and math.isfinite(deadline) and deadline > 0):
            raise ConfigurationError(f"StripePayments: deadline must be > 0, got {deadline!r}")
        if (isinstance(max_scan_pages, bool) or not isinstance(max_scan_pages, int)
                or max_scan_pages < 1):
            raise ConfigurationError("StripePayments: max_scan_pages must be an integer >= 1")
        if not isinstance(reference_key, str) or not 0 < len(reference_key) <= 40:
            raise ConfigurationError("StripePayments: reference_key must be 1-40 characters")
        if (not isinstance(payment_method_types, tuple) or not payment_method_types
                or not all(isinstance(t, str) and t for t in payment_method_types)):
            raise ConfigurationError("StripePayments: payment_method_types must be a non-empty "
                                     "tuple of names such as ('card',)")
        self.payment_method_types = payment_method_types
        self.api_version = api_version
        self.reference_key = reference_key
        self.deadline = float(deadline)
        self.max_scan_pages = max_scan_pages
        self.check_new_references = bool(check_new_references)
        # Learned per client: None while search works, else when to try it again.
        self._search_retry_at: float | None = None
        self.clock = clock
        self.sink = sink
        if rate_limit == "auto":
            rate: float | None = TEST_RATE_LIMIT if self.test_mode else LIVE_RATE_LIMIT
        elif rate_limit is None:
            rate = None
        elif isinstance(rate_limit, int | float) and not isinstance(rate_limit, bool):
            rate = float(rate_limit)
        else:
            raise ConfigurationError("StripePayments: rate_limit must be 'auto', a number of "
                                     "requests per second, or None")
        limiter = None if rate is None else RateLimiter(
            rate, burst=max(1, int(rate)), name=f"stripe-{mode}", clock=clock, sink=sink)
        self.rate_limiter = limiter
        self.store = _store(store)
        # A store opened here from a path is this client's to close; one passed in is the caller's.
        self._own_store = self.store if isinstance(store, str | os.PathLike) else None
        self._keeper: IdempotencyKeeper = IdempotencyKeeper(
            self.store, scope=scope or f"stripe-{mode}", clock=clock, sink=sink,
            max_age=max_key_age, settle_after=settle_after)
        self._client = ApiClient(
            base_url, auth=BearerAuth(key), headers={"Stripe-Version": api_version},
            pipeline=pipeline, retry_hook=stripe_retry_hook, rate_limiter=limiter,
            backend=backend, timeouts=timeouts or Timeouts(), deadline=self.deadline,
            auto_idempotency_key=True,  # Stripe honours Idempotency-Key on every POST
            clock=clock, sink=sink)

    def __repr__(self) -> str:
        mode = "test" if self.test_mode else "live"
        return (f"StripePayments(mode={mode!r}, base_url={self._client.base_url!r}, "
                f"store={self.store!r})")

    @property
    def scope(self) -> str:
        return self._keeper.scope

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
        if isinstance(self._own_store, SqliteIdempotencyStore):
            self._own_store.close()  # its file handles: else they outlive the client

    # -- the port ---------------------------------------------------------------------------------

    async def create(self, request: PaymentRequest) -> Payment:
        if not isinstance(request, PaymentRequest):
            raise InvalidPaymentRequest("create() takes a PaymentRequest")

        def build(generation: int | None) -> WireRequest:
            return wire.create_intent(request, reference_key=self.reference_key,
                                      payment_method_types=self.payment_method_types,
                                      generation=generation)

        first = build(0)  # refuse a bad request before anything is stored or sent

        async def lookup() -> Payment | None:
            return await self._lookup_reference(request)

        call: KeyedCall[Payment] = KeyedCall(
            operation="create", reference=request.reference,
            fingerprint=request_fingerprint("create", request.canonical()),
            send=lambda key, resumed: self._post_intent(
                first if key_generation(key) == 0 else build(key_generation(key)), key,
                resumed, "create", request.reference),
            fetch=self.get, settle=self._settle_create, result_id=_payment_id,
            lookup=lookup if self.check_new_references else None)
        return await self._keeper.run(call)

    async def confirm(self, payment_id: str, *, payment_method: str | None = None) -> Payment:
        built = wire.confirm_intent(payment_id, payment_method=payment_method)
        return await self._keyed_intent("confirm", payment_id, built,
                                        request_fingerprint("confirm", payment_id,
                                                            payment_method))

    async def capture(self, payment_id: str, *, amount: Money | None = None) -> Payment:
        if amount is not None:
            await self._check_currency(payment_id, amount)
        built = wire.capture_intent(payment_id, amount=amount)
        return await self._keyed_intent("capture", payment_id, built,
                                        request_fingerprint("capture", payment_id,
                                                            None if amount is None
                                                            else str(amount)))

    async def cancel(self, payment_id: str, *,
                     reason: CancellationReason | None = None) -> Payment:
        built = wire.cancel_intent(payment_id, reason=reason)
        return await self._keyed_intent("cancel", payment_id, built,
                                        request_fingerprint("cancel", payment_id,
                                                            None if reason is None
                                                            else reason.value))

    async def refund(self, payment_id: str, *, reference: str, amount: Money | None = None,
                     reason: RefundReason | None = None) -> Refund:
        check_reference(reference)
        if amount is not None:
            await self._check_currency(payment_id, amount)
        built = wire.create_refund(payment_id, reference=reference, amount=amount,
                                   reason=reason, reference_key=self.reference_key)

        async def send(key: str, resumed: bool) -> Refund:
            doc = await self._post(built, key, resumed, "refund", reference)
            return self._parse(parse_refund, doc, key=key, operation="refund",
                               reference=reference)

        async def settle(record: IdempotencyRecord) -> Refund | None:
            return await self._find_refund(payment_id, reference)

        async def lookup() -> Refund | None:
            # A lost store beyond Stripe's 24 h: the payment's refunds are a short, consistent
            # list, so one read before the first attempt rules out a second refund.
            try:
                found = await self._find_refund(payment_id, reference)
            except ProviderUnavailable:
                return None  # as for create: a failed check is skipped, not fatal
            if found is not None and amount is not None and found.amount != amount:
                raise IdempotencyMismatch(
                    f"refund reference already used for another amount at Stripe ({found.id}); "
                    f"nothing was sent")
            return found

        call: KeyedCall[Refund] = KeyedCall(
            operation="refund", reference=reference,
            fingerprint=request_fingerprint("refund", payment_id,
                                            None if amount is None else str(amount),
                                            None if reason is None else reason.value),
            send=send, fetch=self._get_refund, settle=settle, result_id=lambda r: r.id,
            lookup=lookup if self.check_new_references else None)
        return await self._keeper.run(call)

    async def get(self, payment_id: str) -> Payment:
        doc = await self._get(wire.retrieve_intent(payment_id), "get")
        return self._parse(parse_payment_intent, doc, operation="get")

    async def find_by_reference(self, reference: str) -> Payment | None:
        """The payment for ``reference``: from the idempotency record if it has one, else by
        Stripe's search (eventually consistent: a payment made seconds ago may not show yet;
        :meth:`reconcile` proves absence)."""
        check_reference(reference)
        record = await self.store.get(self.scope, "create", reference)
        if record is not None and record.result_id is not None:
            return await self.get(record.result_id)
        found = await self._search(reference)
        if found is None:  # no search on this account: the consistent list, newest first
            found, _ = await self._scan(reference, since=None)
        return latest_for_reference(found, reference)

    async def reconcile(self, reference: str) -> Payment | None:
        check_reference(reference)
        call: KeyedCall[Payment] = KeyedCall(
            operation="create", reference=reference, fingerprint="",
            send=_never_sent, fetch=self.get, settle=self._settle_create,
            result_id=_payment_id)
        return await self._keeper.reconcile(call)

    # -- keyed calls ------------------------------------------------------------------------------

    async def _keyed_intent(self, operation: str, payment_id: str, built: WireRequest,
                            fingerprint: str) -> Payment:
        happened = _HAPPENED[operation]

        async def settle(record: IdempotencyRecord) -> Payment | None:
            payment = await self.get(payment_id)
            return payment if happened(payment) else None

        call: KeyedCall[Payment] = KeyedCall(
            operation=operation, reference=payment_id, fingerprint=fingerprint,
            send=lambda key, resumed: self._post_intent(built, key, resumed, operation,
                                                        payment_id),
            fetch=self.get, settle=settle, result_id=_payment_id)
        return await self._keeper.run(call)

    async def _post_intent(self, built: WireRequest, key: str, resumed: bool, operation: str,
                           reference: str) -> Payment:
        doc = await self._post(built, key, resumed, operation, reference)
        return self._parse(parse_payment_intent, doc, key=key, operation=operation,
                           reference=reference)

    async def _post(self, built: WireRequest, key: str, resumed: bool, operation: str,
                    reference: str) -> dict[str, Any]:
        """One keyed POST through the pipeline; failures become the port's errors."""
        log = AttemptLog()
        token = attempt_log.set(log)
        deadline_at = self.clock.now() + self.deadline
        wait = KEY_IN_USE_FIRST_WAIT
        try:
            while True:
                try:
                    response = await self._client.post(
                        built.path, content=built.body, headers=wire.FORM_HEADERS,
                        path_params=built.path_params,
                        idempotency_key=key, deadline=max(deadline_at - self.clock.now(), 0.001))
                    break
                except EgressError as exc:
                    # 409: another attempt with this key is running right now (a concurrent
                    # caller, or our own attempt whose answer was lost). Its outcome will be
                    # the key's outcome: wait for it (bounded by the deadline), then ask again
                    # and get Stripe's replay, instead of reporting OutcomeUnknown.
                    if (isinstance(exc, StatusError) and exc.status_code == 409
                            and self.clock.now() + wait < deadline_at):
                        await self.clock.sleep(wait)
                        wait = min(wait * 2, KEY_IN_USE_MAX_WAIT)
                        continue
                    raise to_domain_error(exc, operation=operation, changes_state=True,
                                          reference=reference, idempotency_key=key,
                                          ambiguous=resumed or log.ambiguous) from exc
        finally:
            attempt_log.reset(token)
        if (response.headers.get("idempotent-replayed") or "").lower() == "true":
            emit_safely(self.sink, IdempotentReplay(operation=operation, at=self.clock.now()))
        return self._json(response, operation, key=key, reference=reference)

    async def _get(self, built: WireRequest, operation: str) -> dict[str, Any]:
        try:
            response = await self._client.get(built.path, params=built.query,
                                              path_params=built.path_params)
        except EgressError as exc:
            raise to_domain_error(exc, operation=operation, changes_state=False) from exc
        return self._json(response, operation)

    def _json(self, response: Response, operation: str, *, key: str | None = None,
              reference: str = "") -> dict[str, Any]:
        try:
            return parse_json(response.content)
        except ValueError as exc:
            raise self._unusable(exc, operation, key, reference) from ResponseError(str(exc))

    def _parse(self, parser: Callable[..., T], doc: Mapping[str, Any], *, operation: str,
               key: str | None = None, reference: str = "") -> T:
        try:
            return parser(doc, reference_key=self.reference_key)
        except ValueError as exc:
            raise self._unusable(exc, operation, key, reference) from ResponseError(str(exc))

    @staticmethod
    def _unusable(exc: ValueError, operation: str, key: str | None,
                  reference: str) -> Exception:
        if key is not None:
            # Stripe answered 2xx, so it acted; we cannot read what it did.
            return OutcomeUnknown(f"{operation}: Stripe's answer cannot be read ({exc})",
                                  idempotency_key=key, reference=reference, operation=operation)
        return ProviderUnavailable(f"{operation}: Stripe's answer cannot be read ({exc})")

    async def _check_currency(self, payment_id: str, amount: Money) -> None:
        payment = await self.get(payment_id)
        if payment.amount.currency != amount.currency:
            raise InvalidPaymentRequest(
                f"amount is in {amount.currency}, the payment in {payment.amount.currency}",
                param="amount")

    # -- lookups ----------------------------------------------------------------------------------

    async def _search(self, reference: str) -> list[Payment] | None:
        """Payments carrying ``reference`` by Stripe's search, or ``None`` when this account has
        no search (learned from a 4xx answer and remembered by this client)."""
        if self._search_retry_at is not None:
            if self.clock.now() < self._search_retry_at:
                return None
            self._search_retry_at = None
        built = wire.search_intents(reference, reference_key=self.reference_key)
        try:
            response = await self._client.get(built.path, params=built.query,
                                              path_params=built.path_params)
        except StatusError as exc:
            if exc.status_code not in _SEARCH_UNAVAILABLE:
                raise to_domain_error(exc, operation="search", changes_state=False) from exc
            # Not "your request is wrong": the query is built here from a checked reference.
            # Search is missing in some regions; the list scan proves what search would show.
            self._search_retry_at = self.clock.now() + SEARCH_RETRY_AFTER
            _log.info("Stripe search answered %s: using the list scan for %.0f s",
                      exc.status_code, SEARCH_RETRY_AFTER)
            return None
        except EgressError as exc:
            raise to_domain_error(exc, operation="search", changes_state=False) from exc
        doc = self._json(response, "search")
        data, _, _ = self._parse(lambda d, reference_key: parse_list(d), doc,
                                 operation="search")
        return [self._parse(parse_payment_intent, obj, operation="search") for obj in data
                if _reference_of(obj, self.reference_key) == reference]

    async def _scan(self, reference: str, *, since: float | None,
                    ) -> tuple[list[Payment], list[Mapping[str, Any]] | None]:
        """The consistent list, newest first: payments carrying ``reference`` (created since
        ``since`` if given) and their raw objects, the latter ``None`` when ``max_scan_pages``
        ran out before the end of the list (absence is then not proven)."""
        created_gte = None if since is None else int(since - CLOCK_SKEW_MARGIN)
        raw: list[Mapping[str, Any]] = []
        after: str | None = None
        for _ in range(self.max_scan_pages):
            doc = await self._get(wire.list_intents(created_gte=created_gte,
                                                    starting_after=after), "list")
            data, has_more, _ = self._parse(lambda d, reference_key: parse_list(d), doc,
                                            operation="list")
            raw.extend(obj for obj in data if _reference_of(obj, self.reference_key) == reference)
            if not has_more or not data:
                return [self._parse(parse_payment_intent, o, operation="list") for o in raw], raw
            after = str(data[-1].get("id"))
        return [self._parse(parse_payment_intent, o, operation="list") for o in raw], None

    async def _lookup_reference(self, request: PaymentRequest) -> Payment | None:
        """Before the first attempt of a reference this store has no record of: does Stripe
        already hold a payment for it? (A lost or new store, beyond the 24 h in which the
        derived key would make Stripe replay.) One search request; payments that old are long
        indexed, so search's lag does not matter here. Without search (or while Stripe does not
        answer) the check is skipped: that is the documented remaining gap."""
        reference = request.reference
        try:
            found = await self._search(reference)
        except ProviderUnavailable:
            return None
        payment = latest_for_reference(found or (), reference, skip_failed=True)
        if payment is not None and payment.amount != request.amount:
            raise IdempotencyMismatch(
                f"reference already used for a different create request at Stripe "
                f"({payment.id}); nothing was sent")
        return payment

    async def _settle_create(self, record: IdempotencyRecord,
                             ) -> Payment | Literal[Proof.NO_EFFECT] | None:
        """Did a PaymentIntent for ``record.reference`` come into being? Search first (fast,
        lagging: only what it finds counts); then list every PaymentIntent created since the key
        was reserved (consistent: a full scan is the proof of absence).

        A declined intent tagged with this key's generation proves the key's attempt ran and
        moved no money: settled at once, without waiting ``settle_after``."""
        reference = record.reference
        try:
            searched = await self._search(reference)
        except ProviderUnavailable:
            searched = None
        found = latest_for_reference(searched or (), reference, skip_failed=True)
        if found is not None:
            return found
        matches, raw = await self._scan(reference, since=record.created_at)
        found = latest_for_reference(matches, reference, skip_failed=True)
        if found is not None:
            return found
        if raw is None:
            raise OutcomeUnknown(
                f"reconcile: more than {self.max_scan_pages * wire.LIST_PAGE_SIZE} "
                f"PaymentIntents since the key was reserved; absence cannot be proven (raise "
                f"max_scan_pages)",
                idempotency_key=record.key, reference=reference, operation="create")
        generation = str(record.generation)
        if any(_metadata_value(obj, GENERATION_KEY) == generation for obj in raw):
            return PROVEN_NO_EFFECT  # every intent here is a declined attempt: no money moved
        return None

    async def _find_refund(self, payment_id: str, reference: str) -> Refund | None:
        after: str | None = None
        for _ in range(self.max_scan_pages):
            doc = await self._get(wire.list_refunds(payment_id, starting_after=after),
                                  "list_refunds")
            data, has_more, _ = self._parse(lambda d, reference_key: parse_list(d), doc,
                                            operation="list_refunds")
            for obj in data:
                if _reference_of(obj, self.reference_key) == reference:
                    parsed: Refund = self._parse(parse_refund, obj, operation="list_refunds")
                    return parsed
            if not has_more or not data:
                return None
            after = str(data[-1].get("id"))
        raise ProviderUnavailable("refund: too many refunds to scan for the reference")

    async def _get_refund(self, refund_id: str) -> Refund:
        doc = await self._get(wire.retrieve_refund(refund_id), "get_refund")
        parsed: Refund = self._parse(parse_refund, doc, operation="get_refund")
        return parsed


def _store(store: IdempotencyStore | str | os.PathLike[str] | None) -> IdempotencyStore:
    if store is None:
        return MemoryIdempotencyStore()
    if isinstance(store, str | os.PathLike):
        return SqliteIdempotencyStore(store)
    if not isinstance(store, IdempotencyStore):
        raise ConfigurationError("StripePayments: store must be an IdempotencyStore or a path")
    return store


def _metadata_value(obj: Mapping[str, Any], key: str) -> object:
    metadata = obj.get("metadata")
    return metadata.get(key) if isinstance(metadata, Mapping) else None


def _reference_of(obj: Mapping[str, Any], reference_key: str) -> object:
    return _metadata_value(obj, reference_key)


def _payment_id(payment: Payment) -> str:
    return payment.id


async def _never_sent(key: str, resumed: bool) -> Payment:  # pragma: no cover
    raise AssertionError("reconcile never sends")

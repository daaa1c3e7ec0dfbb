"""Every decision of the Stripe adapter, written once for its async and sync faces.

:class:`StripeFlow` is the adapter's logic: the wire format of each call, the error mapping,
the :class:`~egress.payments.IdempotencyKeeper` (keys stored before the first byte, settlement
by proof), reconciliation, the search-unavailable fallback, the wait on a key in use (409). It
does its I/O only through a :class:`StripeIo` port (one GET, one keyed POST, a sleep) and its
idempotency store. :class:`~egress.adapters.stripe.StripePayments` hands it an async port over
``ApiClient`` and awaits it; :class:`~egress.adapters.stripe.SyncStripePayments` hands it a
blocking port over ``SyncApiClient`` and a blocking store, and runs each call with
:func:`egress.payments._drive.drive` (see there): both faces make the same decisions because
there is only one copy of them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Literal, Protocol, TypeVar

from egress._clock import Clock
from egress.adapters.stripe import _requests as wire
from egress.adapters.stripe._errors import AttemptLog, attempt_log, to_domain_error
from egress.adapters.stripe._parse import (
    parse_json,
    parse_list,
    parse_payment_intent,
    parse_refund,
)
from egress.adapters.stripe._requests import GENERATION_KEY, StripeRequest
from egress.errors import (
    EgressError,
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    ProviderUnavailable,
    ResponseError,
    StatusError,
)
from egress.events import NULL_SINK, EventSink, emit_safely
from egress.http import Response
from egress.http._url import Params
from egress.payments.idempotency import (
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

__all__ = ["StripeFlow", "StripeIo"]

T = TypeVar("T")

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

_HAPPENED: Mapping[str, Callable[[Payment], bool]] = {
    "confirm": lambda p: p.status not in (PaymentStatus.REQUIRES_PAYMENT_METHOD,
                                          PaymentStatus.REQUIRES_CONFIRMATION),
    "capture": lambda p: p.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING),
    "cancel": lambda p: p.status is PaymentStatus.CANCELED,
}


class StripeIo(Protocol):
    """All the I/O the flow does besides its store: what each face supplies. (Plain methods
    returning awaitables, so the async face can hand over ApiClient's own bound methods.)"""

    def post(self, path: str, *, content: bytes | None, headers: Mapping[str, str],
             path_params: Mapping[str, object] | None, idempotency_key: str,
             deadline: float) -> Awaitable[Response]: ...

    def get(self, path: str, *, params: Params,
            path_params: Mapping[str, object] | None) -> Awaitable[Response]: ...

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class StripeFlow:
    """The PaymentService operations over Stripe, for either face (see the module doc)."""

    def __init__(self, io: StripeIo, *, keeper: IdempotencyKeeper, reference_key: str,
                 payment_method_types: tuple[str, ...], deadline: float, max_scan_pages: int,
                 check_new_references: bool, clock: Clock, sink: EventSink) -> None:
        self._io = io
        self._keeper = keeper
        self.store: IdempotencyStore = keeper.store
        self.reference_key = reference_key
        self.payment_method_types = payment_method_types
        self.deadline = deadline
        self.max_scan_pages = max_scan_pages
        self.check_new_references = check_new_references
        self.clock = clock
        self.sink = sink
        # Learned per client: None while search works, else when to try it again.
        self._search_retry_at: float | None = None

    @property
    def scope(self) -> str:
        return self._keeper.scope

    # -- the port ---------------------------------------------------------------------------------

    async def create(self, request: PaymentRequest) -> Payment:
        if not isinstance(request, PaymentRequest):
            raise InvalidPaymentRequest("create() takes a PaymentRequest")

        def build(generation: int | None) -> StripeRequest:
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

    async def _keyed_intent(self, operation: str, payment_id: str, built: StripeRequest,
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

    async def _post_intent(self, built: StripeRequest, key: str, resumed: bool, operation: str,
                           reference: str) -> Payment:
        doc = await self._post(built, key, resumed, operation, reference)
        try:  # _parse, inline: once per payment
            return parse_payment_intent(doc, reference_key=self.reference_key)
        except ValueError as exc:
            raise self._unusable(exc, operation, key, reference) from ResponseError(str(exc))

    async def _post(self, built: StripeRequest, key: str, resumed: bool, operation: str,
                    reference: str) -> dict[str, Any]:
        """One keyed POST through the pipeline; failures become the port's errors."""
        log = AttemptLog()
        token = attempt_log.set(log)
        deadline_at = self.clock.now() + self.deadline
        remaining = self.deadline  # the first attempt has all of it
        wait = KEY_IN_USE_FIRST_WAIT
        try:
            while True:
                try:
                    response = await self._io.post(
                        built.path, content=built.body, headers=wire.FORM_HEADERS,
                        path_params=built.path_params or None,  # None: the client's URL cache
                        idempotency_key=key, deadline=remaining)
                    break
                except EgressError as exc:
                    # 409: another attempt with this key is running right now (a concurrent
                    # caller, or our own attempt whose answer was lost). Its outcome will be
                    # the key's outcome: wait for it (bounded by the deadline), then ask again
                    # and get Stripe's replay, instead of reporting OutcomeUnknown.
                    if (isinstance(exc, StatusError) and exc.status_code == 409
                            and self.clock.now() + wait < deadline_at):
                        await self._io.sleep(wait)
                        wait = min(wait * 2, KEY_IN_USE_MAX_WAIT)
                        remaining = max(deadline_at - self.clock.now(), 0.001)
                        continue
                    raise to_domain_error(exc, operation=operation, changes_state=True,
                                          reference=reference, idempotency_key=key,
                                          ambiguous=resumed or log.ambiguous) from exc
        finally:
            attempt_log.reset(token)
        # Reading a header decodes them all: only when someone listens.
        if self.sink is not NULL_SINK and (
                response.headers.get("idempotent-replayed") or "").lower() == "true":
            emit_safely(self.sink, IdempotentReplay(operation=operation, at=self.clock.now()))
        return self._json(response, operation, key=key, reference=reference)

    async def _get(self, built: StripeRequest, operation: str) -> dict[str, Any]:
        try:
            response = await self._io.get(built.path, params=built.query,
                                          path_params=built.path_params or None)
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
            response = await self._io.get(built.path, params=built.query,
                                          path_params=built.path_params or None)
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



def _metadata_value(obj: Mapping[str, Any], key: str) -> object:
    metadata = obj.get("metadata")
    return metadata.get(key) if isinstance(metadata, Mapping) else None


def _reference_of(obj: Mapping[str, Any], reference_key: str) -> object:
    return _metadata_value(obj, reference_key)


def _payment_id(payment: Payment) -> str:
    return payment.id


async def _never_sent(key: str, resumed: bool) -> Payment:  # pragma: no cover
    raise AssertionError("reconcile never sends")

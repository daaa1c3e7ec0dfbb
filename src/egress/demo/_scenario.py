"""The demo's load: N payments through a misbehaving fake Stripe, then the ledger's verdict.

Two ways to send them:

* **resilient**: :class:`~egress.adapters.stripe.StripePayments` with its default pipeline
  (deadline, retries with a budget and Stripe's rules, breaker, bulkhead), durable idempotency
  keys in a SQLite file, and reconciliation of every outcome it could not see;
* **no resilience**: what the seed sketched: a plain pooled HTTP client that retries any failure
  three times, with no idempotency key and no breaker, as too many integrations still do.

Either way the fake's ledger, the provider's own record of money taken, has the last word.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import aiohttp

from egress.adapters.stripe import DEFAULT_API_VERSION, StripePayments
from egress.errors import (
    OutcomeUnknown,
    PaymentDeclined,
    PaymentError,
    ProviderUnavailable,
)
from egress.events import CircuitStateChanged, Event, EventSink, FanOutSink, RetryScheduled
from egress.http import Timeouts
from egress.payments import Money, Payment, PaymentRequest, PaymentStatus
from egress.testing.fake_stripe import CHAOS_PROFILES, FakeStripe

if TYPE_CHECKING:
    from egress.demo._fleet import FleetOptions

__all__ = ["DemoOptions", "DemoReport", "Progress", "run_demo"]

CHAOS_CHOICES = tuple(CHAOS_PROFILES)
#: The demo talks to a local fake, not to Stripe: it may go faster than Stripe's 25/s test limit.
DEMO_RATE_LIMIT = 400.0
#: The fake answers in milliseconds, so an attempt that hears nothing for 2 s (a black hole) is
#: abandoned then, not after the 30 s a real provider deserves.
DEMO_TIMEOUTS = Timeouts(read=2.0, total=3.0)
#: Reconciliation trusts "no payment at the provider" only this long after the last attempt
#: (Stripe's search lags; the adapter's default is 600 s). The fake's search and list are
#: consistent at once, so the demo need not wait ten minutes to prove a declined or lost attempt.
DEMO_SETTLE_AFTER = 2.0
#: Unknown outcomes are reconciled in rounds, waiting for the provider between them (an outage
#: may still be going on): at most this many rounds and this many seconds in all.
RECONCILE_ROUNDS = 8
RECONCILE_WITHIN = 20.0
#: Payments refused while the provider was down (ProviderUnavailable: nothing charged) are sent
#: again once it is back, as a job queue would: a probe first, the rest when it gets through,
#: backing off between tries, for at most this many seconds.
REDRIVE_WITHIN = 30.0

# (payment method, share): mostly good cards, some declines, a few needing 3-D Secure.
_CARD_MIX: tuple[tuple[str, float], ...] = (
    ("pm_card_visa", 0.80),
    ("pm_card_mastercard", 0.10),
    ("pm_card_chargeDeclined", 0.04),
    ("pm_card_chargeDeclinedInsufficientFunds", 0.03),
    ("pm_card_authenticationRequired", 0.03),
)
_AMOUNTS: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    ("USD", lambda r: f"{r.randint(50, 50_000) / 100:.2f}"),
    ("EUR", lambda r: f"{r.randint(50, 50_000) / 100:.2f}"),
    ("JPY", lambda r: str(r.randint(100, 90_000))),
    ("KWD", lambda r: f"{r.randint(10, 9_000) / 100:.2f}"),  # 3 decimals; Stripe wants x.xx0
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    """What ``egress demo`` runs. The defaults finish well within a minute on 2 cores."""

    payments: int = 500
    concurrency: int = 16
    chaos: str = "ambiguous"
    seed: int = 7
    resilience: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.payments <= 100_000:
            raise ValueError("--payments must be between 1 and 100000")
        if not 1 <= self.concurrency <= 512:
            raise ValueError("--concurrency must be between 1 and 512")
        if self.chaos not in CHAOS_PROFILES:
            raise ValueError(f"--chaos must be one of {', '.join(CHAOS_PROFILES)}")


@dataclass(slots=True)
class Progress:
    """Live counters, updated as payments finish and events arrive (read by the display)."""

    total: int
    done: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    breaker_openings: int = 0
    breaker_state: str = "closed"
    latencies: list[float] = field(default_factory=list)
    redriven: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class DemoReport:
    """Everything the demo found, JSON-ready through :meth:`as_dict`."""

    mode: Literal["resilient", "no-resilience"]
    options: DemoOptions
    outcomes: dict[str, int]
    reconciled: dict[str, int]
    wire_requests: int
    requests_by_route: dict[str, int]
    faults_injected: dict[str, int]
    idempotent_replays: int
    retries: int
    breaker_openings: int
    latency_ms: dict[str, float]
    elapsed_s: float
    ledger: dict[str, Any]
    invariant_ok: bool
    verdict: str
    #: Final outcomes of the payments refused during an outage and sent again afterwards.
    redriven: dict[str, int] = field(default_factory=dict)

    @property
    def completed_after_outage(self) -> int:
        """Refused payments that got a final answer when sent again."""
        return sum(n for outcome, n in self.redriven.items() if outcome != "still refused")
    fleet: dict[str, Any] | None = None  # --workers: the workers' shared limit and rate

    def as_dict(self) -> dict[str, Any]:
        fleet = {} if self.fleet is None else {"fleet": self.fleet}
        return {**fleet,
            "mode": self.mode,
            "payments": self.options.payments,
            "concurrency": self.options.concurrency,
            "chaos": self.options.chaos,
            "seed": self.options.seed,
            "outcomes": self.outcomes,
            "reconciled": self.reconciled,
            "redriven": self.redriven,
            "completed_after_outage": self.completed_after_outage,
            "wire_requests": self.wire_requests,
            "requests_by_route": self.requests_by_route,
            "faults_injected": self.faults_injected,
            "idempotent_replays": self.idempotent_replays,
            "retries": self.retries,
            "breaker_openings": self.breaker_openings,
            "latency_ms": self.latency_ms,
            "elapsed_s": round(self.elapsed_s, 3),
            "ledger": self.ledger,
            "invariant": "charges equal succeeded payments: no double charge, no lost payment",
            "invariant_ok": self.invariant_ok,
            "verdict": self.verdict,
        }


def plan_payments(options: DemoOptions) -> list[PaymentRequest]:
    """The same seed gives the same payments: references, amounts, currencies and cards."""
    rng = random.Random(options.seed)
    methods = [m for m, _ in _CARD_MIX]
    weights = [w for _, w in _CARD_MIX]
    plan = []
    for i in range(options.payments):
        currency, amount = _AMOUNTS[rng.randrange(len(_AMOUNTS))]
        plan.append(PaymentRequest(
            amount=Money(Decimal(amount(rng)), currency),
            reference=f"order-{options.seed}-{i:06d}",
            payment_method=rng.choices(methods, weights)[0],
            description=f"demo order {i}",
        ))
    return plan


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index] * 1000.0, 2)


class _DemoSink:
    """Turns policy events into the live counters."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def emit(self, event: Event) -> None:
        if isinstance(event, RetryScheduled):
            self.progress.retries += 1
        elif isinstance(event, CircuitStateChanged):
            self.progress.breaker_state = event.new
            if event.new == "open":
                self.progress.breaker_openings += 1


@runtime_checkable
class _StoreWatcher(Protocol):
    """A sink that shows an idempotency store's records in doubt (the live dashboard's)."""

    def watching(self, store: object) -> contextlib.AbstractContextManager[None]: ...


async def _run_resilient(options: DemoOptions, fake: FakeStripe, plan: list[PaymentRequest],
                         progress: Progress, folder: Path, *, sink: EventSink | None = None,
                         ) -> tuple[set[str], set[str], dict[str, int]]:
    paid: set[str] = set()
    unknown: list[PaymentRequest] = []
    refused: list[PaymentRequest] = []
    gate = asyncio.Semaphore(options.concurrency)
    payments = StripePayments(fake.api_key, base_url=fake.url,
                              store=folder / "idempotency.sqlite3",
                              rate_limit=DEMO_RATE_LIMIT, timeouts=DEMO_TIMEOUTS,
                              settle_after=DEMO_SETTLE_AFTER,
                              sink=_DemoSink(progress) if sink is None else
                              FanOutSink([_DemoSink(progress), sink]))

    reconciled: Counter[str] = Counter()
    # The dashboard lists the store's records in doubt while it is open (closed, it is not read).
    watch = (sink.watching(payments.store) if isinstance(sink, _StoreWatcher)
             else contextlib.nullcontext())
    async with payments:
        with watch:
            await asyncio.gather(*(_submit(payments, request, gate=gate, progress=progress,
                                           paid=paid, unknown=unknown, refused=refused)
                                   for request in plan))
            await _redrive(payments, refused, gate=gate, paid=paid, unknown=unknown,
                           redriven=progress.redriven)
            pending = await _reconcile(payments, unknown, paid, reconciled)
    if pending:
        reconciled["still unknown"] = len(pending)
    still_unknown = set(pending)
    return paid, still_unknown, dict(reconciled)


async def _redrive(payments: StripePayments, refused: list[PaymentRequest], *,
                   gate: asyncio.Semaphore, paid: set[str], unknown: list[PaymentRequest],
                   redriven: Counter[str]) -> None:
    """Send again the payments refused while the provider was down, once it is back.

    ``ProviderUnavailable`` proves nothing was charged, so the same request may simply be sent
    later, with the same stored idempotency key: even a refusal that raced a charge cannot
    charge twice. A job queue does exactly this: one job first as a probe (while the breaker is
    open it is refused at once, without traffic), and once the probe gets a final answer, the
    rest, concurrently. A job that is refused again, or whose answer is lost
    (``OutcomeUnknown``: also what a resumed key meets at an open breaker), stays queued.
    """
    pending = list(refused)
    deadline = time.monotonic() + REDRIVE_WITHIN
    delay = 0.25
    probe_ok = False
    while pending and time.monotonic() < deadline:
        if not probe_ok:
            first = await _create(payments, pending[0])
            if first in _NOT_YET:  # still down, or the breaker still open: back off
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)
                continue
            probe_ok = True
            outcomes = {pending[0].reference: first}
        else:
            outcomes = {}

        async def again(request: PaymentRequest, into: dict[str, str]) -> None:
            async with gate:
                into[request.reference] = await _create(payments, request)

        await asyncio.gather(*(again(request, outcomes) for request in pending
                               if request.reference not in outcomes))
        still: list[PaymentRequest] = []
        for request in pending:
            result = outcomes[request.reference]
            if result in _NOT_YET:
                still.append(request)
                continue
            if result == "succeeded":
                paid.add(request.reference)
            redriven[result] += 1
        pending = still
        if pending:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
    for request in pending:  # out of time: reconciliation settles what may have been sent
        unknown.append(request)
    if pending:
        redriven["still refused"] = len(pending)


_NOT_YET = frozenset({"provider unavailable", "outcome unknown"})


async def _reconcile(payments: StripePayments, unknown: list[PaymentRequest], paid: set[str],
                     reconciled: Counter[str]) -> list[str]:
    """Settle every unknown outcome, in rounds, waiting for the provider between them.

    First ask the provider (``reconcile``). When it cannot prove the outcome yet, send the same
    request again: the stored idempotency key goes with it, so the provider either replays the
    first result or runs it once, never twice.
    """
    pending = list(unknown)
    deadline = time.monotonic() + RECONCILE_WITHIN
    for round_ in range(RECONCILE_ROUNDS):
        if not pending:
            break
        if round_:
            await asyncio.sleep(min(4.0, 0.5 * 2 ** (round_ - 1),
                                    max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            break
        still: list[PaymentRequest] = []
        for request in pending:
            try:
                found = await payments.reconcile(request.reference)
            except ProviderUnavailable:
                still.append(request)
                continue
            except OutcomeUnknown:
                outcome = await _create(payments, request)
                if outcome in {"outcome unknown", "provider unavailable"}:
                    still.append(request)
                    continue
                if outcome == "succeeded":
                    paid.add(request.reference)
                reconciled[f"sent again with the same key: {outcome}"] += 1
                continue
            if found is not None and found.status is PaymentStatus.SUCCEEDED:
                reconciled["found charged at the provider"] += 1
                paid.add(request.reference)
            elif found is not None:
                status = str(found.status.value).replace("_", " ")
                reconciled[f"found at the provider, not charged ({status})"] += 1
            else:
                reconciled["proven never charged"] += 1
        pending = still
    return [request.reference for request in pending]


async def _submit(payments: StripePayments, request: PaymentRequest, *, gate: asyncio.Semaphore,
                  progress: Progress, paid: set[str], unknown: list[PaymentRequest],
                  refused: list[PaymentRequest] | None = None) -> None:
    """Create one payment under ``gate``, file it by outcome and count it: the one submission
    step of the demo and of each fleet worker (``refused`` collects what to re-drive)."""
    async with gate:
        started = time.perf_counter()
        outcome = await _create(payments, request)
        progress.latencies.append(time.perf_counter() - started)
    if outcome == "succeeded":
        paid.add(request.reference)
    elif outcome == "outcome unknown":
        unknown.append(request)
    elif outcome == "provider unavailable" and refused is not None:
        refused.append(request)
    progress.outcomes[outcome] += 1
    progress.done += 1


async def _create(payments: StripePayments, request: PaymentRequest) -> str:
    try:
        payment: Payment = await payments.create(request)
    except PaymentDeclined:
        return "declined"
    except OutcomeUnknown:
        return "outcome unknown"
    except ProviderUnavailable:
        return "provider unavailable"
    except PaymentError as exc:
        return f"failed: {type(exc).__name__}"
    if payment.status is PaymentStatus.SUCCEEDED:
        return "succeeded"
    return str(payment.status.value).replace("_", " ")


def _naive_form(request: PaymentRequest, reference_key: str) -> dict[str, str]:
    """The create call as a hand-written integration sends it: the form built by hand (no SDK,
    no idempotency key), the reference in the metadata the fake's ledger reads."""
    form = {"amount": str(request.amount.to_minor()),
            "currency": request.amount.currency.lower(),
            "confirm": "true" if request.confirm else "false",
            "capture_method": "automatic" if request.capture else "manual",
            "payment_method_types[0]": "card"}
    for name in ("customer", "description", "payment_method"):
        value = getattr(request, name)
        if value is not None:
            form[name] = value
    for key, value in {**request.metadata, reference_key: request.reference}.items():
        form[f"metadata[{key}]"] = value
    return form


async def _run_naive(options: DemoOptions, fake: FakeStripe, plan: list[PaymentRequest],
                     progress: Progress) -> set[str]:
    """The seed's pattern: retry any failure 3 times, no idempotency key, no breaker."""
    paid: set[str] = set()
    gate = asyncio.Semaphore(options.concurrency)
    headers = {"Authorization": f"Bearer {fake.api_key}",
               "Stripe-Version": DEFAULT_API_VERSION}

    async def one(client: aiohttp.ClientSession, request: PaymentRequest) -> None:
        form = _naive_form(request, fake.reference_key)
        async with gate:
            started = time.perf_counter()
            outcome = "failed after retries"
            for attempt in range(3):
                if attempt:
                    progress.retries += 1
                    await asyncio.sleep(0.05 * 2**attempt)
                try:
                    async with client.post(fake.url + "/v1/payment_intents", data=form,
                                           headers=headers, timeout=timeout) as response:
                        status = response.status
                        document = await response.json(content_type=None)
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    continue
                if status >= 500 or status == 429:
                    continue
                if status == 402:
                    outcome = "declined"
                elif status == 200 and document.get("status") == "succeeded":
                    outcome = "succeeded"
                else:
                    outcome = str(document.get("status", status)).replace("_", " ")
                break
            progress.latencies.append(time.perf_counter() - started)
        if outcome == "succeeded":
            paid.add(request.reference)
        progress.outcomes[outcome] += 1
        progress.done += 1

    timeout = aiohttp.ClientTimeout(total=2.0)
    async with aiohttp.ClientSession() as client:
        await asyncio.gather(*(one(client, request) for request in plan))
    return paid


def run_demo(options: DemoOptions, *,
             on_start: Callable[[Progress], None] | None = None,
             fleet: FleetOptions | None = None,
             sink: EventSink | None = None) -> DemoReport:
    """Start the fake, push the payments, reconcile, and read the ledger's verdict.

    With ``fleet``, worker processes make the payments, sharing state through Redis.
    ``sink`` also receives the resilient run's events (the live dashboard's).
    """
    plan = plan_payments(options)
    progress = Progress(total=len(plan))
    if on_start is not None:
        on_start(progress)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="egress-demo-") as tmp, \
            FakeStripe(chaos=options.chaos, seed=options.seed) as fake:
        reconciled: dict[str, int] = {}
        unknown: set[str] = set()
        fleet_info: dict[str, Any] | None = None
        if fleet is not None:
            from egress.demo._fleet import run_fleet

            paid, unknown, reconciled, fleet_info = run_fleet(options, fleet, fake, progress)
        elif options.resilience:
            paid, unknown, reconciled = asyncio.run(
                _run_resilient(options, fake, plan, progress, Path(tmp), sink=sink))
        else:
            paid = asyncio.run(_run_naive(options, fake, plan, progress))
        elapsed = time.perf_counter() - started
        check = fake.ledger.verify(paid, unknown=unknown)
        stats = fake.stats()
        summary = fake.ledger.summary()
    latencies = progress.latencies
    double = sum(len(charges) - 1 for charges in check.double_charged.values())
    ledger = {
        **summary,
        "reported_paid": check.paid,
        "charged_references": check.charged,
        "double_charged_references": len(check.double_charged),
        "extra_charges": double,
        "paid_but_not_charged": len(check.missing),
        "charged_but_not_reported_paid": len(check.unexpected),
        "charges_without_reference": check.unreferenced,
    }
    return DemoReport(
        mode="resilient" if options.resilience else "no-resilience",
        options=options,
        outcomes=dict(progress.outcomes),
        reconciled=reconciled,
        redriven=dict(progress.redriven),
        wire_requests=stats.get("requests", 0),
        requests_by_route={k.removeprefix("route."): v for k, v in sorted(stats.items())
                           if k.startswith("route.")},
        faults_injected={k.removeprefix("fault."): v for k, v in sorted(stats.items())
                         if k.startswith("fault.") and v},
        idempotent_replays=stats.get("idempotent_replays", 0),
        retries=progress.retries,
        breaker_openings=progress.breaker_openings,
        latency_ms={"p50": _percentile(latencies, 0.5), "p99": _percentile(latencies, 0.99),
                    "max": _percentile(latencies, 1.0),
                    "mean": round(statistics.fmean(latencies) * 1000.0, 2) if latencies else 0.0},
        elapsed_s=elapsed,
        ledger=ledger,
        invariant_ok=check.ok,
        verdict=str(check),
        fleet=fleet_info,
    )


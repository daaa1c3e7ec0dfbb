"""``FakeStripe``: the fault-injecting fake Stripe server, run in a thread or in your loop.

Two ways to run it in-process:

* ``with FakeStripe(...) as fake:`` starts the server on a background thread with its own event
  loop, so synchronous code (the official ``stripe`` SDK) and asynchronous code on the caller's
  loop can both talk to it;
* ``async with FakeStripe(...) as fake:`` serves from the running event loop (no thread): only
  asynchronous clients on that loop can use it, since a blocking call would stall the server.

Either way it listens on a free port on 127.0.0.1 (or the ``port`` you give) and ``fake.url``
is the ``api_base`` to point a client at.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import secrets
import socket
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from egress._clock import SYSTEM_CLOCK, Clock
from egress._serving import stop_accepting
from egress.errors import ConfigurationError
from egress.testing.fake_stripe._app import build_app
from egress.testing.fake_stripe._core import Core
from egress.testing.fake_stripe._faults import (
    CHAOS_PROFILES,
    ChaosProfile,
    FaultPlan,
    FaultRule,
    RateLimit,
    parse_rules,
)
from egress.testing.fake_stripe._idempotency import DEFAULT_IDEMPOTENCY_TTL, IdempotencyLayer
from egress.testing.fake_stripe._ledger import Ledger
from egress.testing.fake_stripe._ratelimit import TokenBucket
from egress.testing.fake_stripe._state import DEFAULT_REFERENCE_KEY, StripeState
from egress.testing.fake_stripe._webhooks import (
    DEFAULT_WEBHOOK_ATTEMPTS,
    DEFAULT_WEBHOOK_BACKOFF,
    DEFAULT_WEBHOOK_TIMEOUT,
    Delivery,
    WebhookSender,
    WebhookSettings,
)

__all__ = ["DEFAULT_API_KEY", "DEFAULT_SHUTDOWN_TIMEOUT", "FakeStripe"]

DEFAULT_API_KEY = "sk_test_egress_fake_0000000000"
DEFAULT_SHUTDOWN_TIMEOUT = 1.0
DEFAULT_STARTUP_TIMEOUT = 10.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FakeStripe:
    """A local Stripe (PaymentIntents and refunds) that misbehaves on command.

    Keyword-only settings, checked when built (:class:`~egress.errors.ConfigurationError`):

    ``chaos``
        A profile name from :data:`CHAOS_PROFILES` (``none``, ``flaky``, ``outage``,
        ``rate-limited``, ``ambiguous``) or a :class:`ChaosProfile`.
    ``faults``
        Extra rules: fault-spec text or :class:`FaultRule` objects, consulted after the
        profile's.
    ``seed``
        Seeds the fault draws and the ids, so a run can be repeated (the fault sequence is
        exact when requests arrive in the same order).
    ``port`` / ``host``
        ``0`` picks a free port; the host must be a loopback address.
    ``api_keys``
        Accepted secret keys; by default any ``sk_test_…`` or ``rk_test_…`` key.
    ``idempotency_ttl``
        Seconds an idempotency key is remembered (Stripe: at least 24 h).
    ``rate_limit``
        A :class:`RateLimit` token bucket over all API routes (overrides the profile's).
    ``webhook_url`` / ``webhook_secret`` / ``webhook_attempts`` / ``webhook_backoff`` /
    ``webhook_timeout`` / ``webhook_duplicates``
        Where events go, signed with the secret (generated if not given); attempts in all,
        first backoff in seconds (doubling, capped at 2 s), per-attempt timeout, share of
        events delivered twice.
    ``reference_key``
        The metadata key the ledger groups charges by (default ``reference``).
    ``search_lag``
        Seconds before a new PaymentIntent shows in search results (Stripe's search is
        eventually consistent).
    ``keepalive_timeout``
        Seconds the server keeps an idle keep-alive connection open.
    ``clock``
        Source of ``now()`` (key expiry, search lag, fault windows, rate limit) and ``wall()``
        (``created`` timestamps, webhook signatures). Latency faults sleep for real.
    """

    def __init__(
        self,
        *,
        chaos: str | ChaosProfile = "none",
        faults: str | Iterable[FaultRule] | None = None,
        seed: int | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        api_keys: Iterable[str] | None = None,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
        rate_limit: RateLimit | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_attempts: int = DEFAULT_WEBHOOK_ATTEMPTS,
        webhook_backoff: float = DEFAULT_WEBHOOK_BACKOFF,
        webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT,
        webhook_duplicates: float = 0.0,
        reference_key: str = DEFAULT_REFERENCE_KEY,
        search_lag: float = 0.0,
        keepalive_timeout: float = 75.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(chaos, str):
            if chaos not in CHAOS_PROFILES:
                raise ConfigurationError(
                    f"chaos must be one of {', '.join(CHAOS_PROFILES)}; got {chaos!r}")
            chaos = CHAOS_PROFILES[chaos]
        if not _is_loopback(host):
            raise ConfigurationError(f"host must be a loopback address, got {host!r}")
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be within 0..65535, got {port}")
        if idempotency_ttl <= 0:
            raise ConfigurationError("idempotency_ttl must be > 0")
        if search_lag < 0 or keepalive_timeout < 0:
            raise ConfigurationError("search_lag and keepalive_timeout must be >= 0")
        self.profile = chaos
        self.seed = seed
        self.host = host
        self._requested_port = port
        self._keepalive_timeout = keepalive_timeout
        self.webhook_url = webhook_url
        self.reference_key = reference_key  # the metadata key the ledger files references by
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(16)
        rng = random.Random(seed)
        state = StripeState(wall=clock.wall, now=clock.now, rng=random.Random(rng.random()),
                            reference_key=reference_key, search_lag=search_lag)
        plan = FaultPlan(seed=seed, now=clock.now)
        plan.use_profile(chaos)
        if isinstance(faults, str):
            plan.add(*parse_rules(faults))
        elif faults is not None:
            plan.add(*faults)
        limit = rate_limit or chaos.rate_limit
        limiter = (TokenBucket(rate=limit.rate, burst=limit.burst, now=clock.now)
                   if limit is not None else None)
        sender = None
        if webhook_url is not None:
            sender = WebhookSender(WebhookSettings(
                url=webhook_url, secret=self.webhook_secret, attempts=webhook_attempts,
                backoff=webhook_backoff, timeout=webhook_timeout,
                duplicates=webhook_duplicates), wall=clock.wall, rng=random.Random(seed))
        self._core = Core(
            state=state, faults=plan,
            idempotency=IdempotencyLayer(ttl=idempotency_ttl, now=clock.now),
            limiter=limiter, webhooks=sender,
            api_keys=frozenset(api_keys) if api_keys is not None else None,
            wall=clock.wall, seed=seed)
        self.api_key = next(iter(api_keys)) if api_keys is not None else DEFAULT_API_KEY
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- what tests read ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("FakeStripe has not been started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL (``api_base``), e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def ledger(self) -> Ledger:
        """Every successful charge, recorded once: read it to check invariants."""
        return self._core.state.ledger

    @property
    def faults(self) -> FaultPlan:
        """The fault rules in force: ``fake.faults.script(...)``, ``.share(...)``, ``.clear()``."""
        return self._core.faults

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted so far (whether or not a webhook URL is set), oldest first."""
        with self._core.state.lock:
            return list(self._core.state.events)

    @property
    def webhook_deliveries(self) -> tuple[Delivery, ...]:
        sender = self._core.webhooks
        return sender.deliveries if sender is not None else ()

    def payment_intent(self, ident: str) -> dict[str, Any] | None:
        """A copy of one PaymentIntent as the API would show it, or ``None``."""
        return self._core.state.intent_snapshot(ident)

    def payment_intents(self) -> list[dict[str, Any]]:
        return self._core.state.intents_snapshot()

    def stats(self) -> dict[str, int]:
        """Counters: ``requests``, ``route.<name>``, ``status.<code>``, ``idempotent_replays``,
        ``idempotency_key_in_use``, ``idempotency_mismatch``, ``rate_limited``, and
        ``fault.<name>`` for every fault acted out."""
        core = self._core
        counters = core.counter_snapshot()
        counters.update({f"fault.{k}": v for k, v in core.faults.injected.items()})
        return counters

    def complete_action(self, ident: str, *, succeed: bool = True) -> dict[str, Any]:
        """Play the customer finishing 3-D Secure on a ``requires_action`` PaymentIntent."""
        intent = self._core.state.complete_action(ident, succeed=succeed)
        self._flush_events()
        return intent

    def reset(self) -> None:
        """Forget everything: objects, ledger, events, idempotency keys, faults, counters."""
        core = self._core
        core.state.reset()
        core.idempotency.clear()
        core.faults.clear()
        core.faults.reset_counters()
        core.faults.reseed(self.seed)
        core.faults.use_profile(self.profile)
        if core.webhooks is not None:
            core.webhooks.clear()
        core.clear_counters()

    def _flush_events(self) -> None:
        events = self._core.state.take_events()
        sender = self._core.webhooks
        if sender is None or not events or self._loop is None:
            return
        if self._thread is not None:
            self._loop.call_soon_threadsafe(sender.submit, events)
        else:
            sender.submit(events)

    # -- lifecycle: in the current event loop --------------------------------------------------

    async def start_async(self) -> FakeStripe:
        """Serve from the running loop (no thread)."""
        await self._serve()
        self._loop = asyncio.get_running_loop()
        return self

    async def stop_async(self) -> None:
        await self._shutdown()
        self._loop = None

    async def __aenter__(self) -> FakeStripe:
        if self._thread is not None:
            return self
        return await self.start_async()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._thread is None:
            await self.stop_async()

    async def wait_for_webhooks(self, within: float = 5.0) -> bool:
        """Wait until every webhook delivery has finished; ``False`` on timeout."""
        sender = self._core.webhooks
        if sender is None:
            return True
        if self._thread is not None and self._loop is not None:
            future = asyncio.run_coroutine_threadsafe(sender.settle(within), self._loop)
            return await asyncio.wrap_future(future)
        return await sender.settle(within)

    # -- lifecycle: on a background thread -----------------------------------------------------

    def start(self) -> FakeStripe:
        """Serve from a background thread with its own event loop."""
        if self._thread is not None or self._runner is not None:
            raise RuntimeError("FakeStripe is already running")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="egress-fake-stripe", daemon=True)
        self._thread.start()
        if not started.wait(DEFAULT_STARTUP_TIMEOUT) or failure:
            self._thread.join(1.0)
            self._thread = None
            self._loop = None
            if failure:
                raise failure[0]
            raise RuntimeError("FakeStripe did not start in time")
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._core.closing = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(DEFAULT_STARTUP_TIMEOUT)
        self._thread = None
        self._loop = None

    def wait_for_webhooks_sync(self, within: float = 5.0) -> bool:
        """:meth:`wait_for_webhooks` for synchronous tests (background-thread mode only)."""
        sender = self._core.webhooks
        if sender is None:
            return True
        if self._thread is None or self._loop is None:
            raise RuntimeError("wait_for_webhooks_sync needs FakeStripe started with start()")
        future = asyncio.run_coroutine_threadsafe(sender.settle(within), self._loop)
        return future.result(within + 1.0)

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- shared --------------------------------------------------------------------------------

    async def _serve(self) -> None:
        self._core.closing = False
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        app = build_app(self._core, reset=self.reset)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=DEFAULT_SHUTDOWN_TIMEOUT,
                               keepalive_timeout=self._keepalive_timeout)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        self._runner = runner

    async def _shutdown(self) -> None:
        self._core.closing = True
        if self._socket is not None:
            # First, so that a client connecting as the server stops gets a connection that
            # the cleanup closes, not a socket leaked to the garbage collector (egress._serving).
            await stop_accepting([self._socket])
        if self._core.webhooks is not None:
            await self._core.webhooks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __repr__(self) -> str:
        where = self.url if self._runner is not None else "stopped"
        return f"FakeStripe({where}, chaos={self.profile.name!r}, seed={self.seed!r})"

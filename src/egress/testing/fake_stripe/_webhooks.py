"""Signed webhook delivery, the way Stripe signs and retries.

Each event is POSTed as JSON to the configured URL with
``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``; the
signature is computed afresh (new ``t``) for every attempt. A 2xx answer is a delivery; anything
else (another status, a refused connection, a timeout) is retried after an exponential backoff,
up to ``attempts`` times in all. Events are delivered concurrently, so, as at Stripe, their
order is not guaranteed; a share of events may be delivered twice on purpose (``duplicates``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from egress.errors import ConfigurationError

__all__ = [
    "DEFAULT_WEBHOOK_ATTEMPTS",
    "DEFAULT_WEBHOOK_BACKOFF",
    "DEFAULT_WEBHOOK_MAX_BACKOFF",
    "DEFAULT_WEBHOOK_TIMEOUT",
    "Delivery",
    "WebhookSender",
    "WebhookSettings",
    "sign_payload",
    "signature_header",
]

DEFAULT_WEBHOOK_ATTEMPTS = 5
DEFAULT_WEBHOOK_BACKOFF = 0.1
DEFAULT_WEBHOOK_MAX_BACKOFF = 2.0
DEFAULT_WEBHOOK_TIMEOUT = 2.0
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign_payload(payload: str | bytes, secret: str, timestamp: int) -> str:
    """The hex ``v1`` signature of ``payload`` (the raw body) at ``timestamp``."""
    body = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    signed = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(payload: str | bytes, secret: str, timestamp: int) -> str:
    """A complete ``Stripe-Signature`` header value."""
    return f"t={timestamp},v1={sign_payload(payload, secret, timestamp)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    """Where and how to deliver events. ``secret`` is the endpoint's ``whsec_…`` secret."""

    url: str
    secret: str
    attempts: int = DEFAULT_WEBHOOK_ATTEMPTS
    backoff: float = DEFAULT_WEBHOOK_BACKOFF
    max_backoff: float = DEFAULT_WEBHOOK_MAX_BACKOFF
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    duplicates: float = 0.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError("webhook_url must be an http:// or https:// URL")
        if not self.secret:
            raise ConfigurationError("webhook_secret must not be empty")
        if self.attempts < 1:
            raise ConfigurationError("webhook_attempts must be >= 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.timeout <= 0:
            raise ConfigurationError("webhook backoff and timeout must be positive")
        if not 0.0 <= self.duplicates <= 1.0:
            raise ConfigurationError("webhook_duplicates must be within 0..1")

    def __repr__(self) -> str:  # the secret never shows
        return f"WebhookSettings(url={self.url!r}, attempts={self.attempts})"

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt: ``status`` is the HTTP answer, or ``None`` with ``error`` set."""

    event_id: str
    event_type: str
    attempt: int
    status: int | None
    error: str | None
    timestamp: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Delivers events from the server's event loop; readable from any thread."""

    def __init__(self, settings: WebhookSettings, *, wall: Callable[[], float],
                 rng: random.Random) -> None:
        self.settings = settings
        self._wall = wall
        self._rng = rng
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []

    @property
    def deliveries(self) -> tuple[Delivery, ...]:
        with self._lock:
            return tuple(self._deliveries)

    def delivered(self) -> tuple[str, ...]:
        """Ids of the events delivered successfully (once per success, duplicates included)."""
        return tuple(d.event_id for d in self.deliveries if d.ok)

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()

    def submit(self, events: list[dict[str, Any]]) -> None:
        """Start delivering ``events`` (call on the server's loop)."""
        for event in events:
            copies = 2 if self._rng.random() < self.settings.duplicates else 1
            for _ in range(copies):
                task = asyncio.get_running_loop().create_task(self._deliver(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def settle(self, within: float) -> bool:
        """Wait until every delivery finished (success or attempts used up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _deliver(self, event: dict[str, Any]) -> None:
        settings = self.settings
        body = json.dumps(event, indent=2)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=settings.timeout))
        for attempt in range(1, settings.attempts + 1):
            timestamp = int(self._wall())
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature_header(body, settings.secret, timestamp),
                "User-Agent": USER_AGENT,
            }
            status: int | None = None
            error: str | None = None
            try:
                async with self._session.post(settings.url, data=body.encode(),
                                              headers=headers) as response:
                    await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = type(exc).__name__
            record = Delivery(event["id"], event["type"], attempt, status, error, timestamp)
            with self._lock:
                self._deliveries.append(record)
            if record.ok:
                return
            if attempt < settings.attempts:
                await asyncio.sleep(settings.delay(attempt))

"""A recording wrapper around a StripePayments client's wire backend (the Stripe unit tests).

    wire = record(payments)        # every request from now on is kept in wire.sent
    (post,) = wire.posts()
    header(post, "Idempotency-Key")
"""

from __future__ import annotations

from typing import Any

from egress.adapters.stripe import StripePayments
from egress.http._wire import WireRequest, WireResponse


class RecordingWire:
    """Wraps the client's wire backend and keeps every request that went out."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[WireRequest] = []

    async def send(self, request: WireRequest) -> WireResponse:
        self.sent.append(request)
        response: WireResponse = await self.inner.send(request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def posts(self, path: str = "/v1/payment_intents") -> list[WireRequest]:
        """The POSTs sent to a URL ending with ``path`` (query string ignored)."""
        return [r for r in self.sent
                if r.method == "POST" and r.url.split("?")[0].endswith(path)]


def record(payments: StripePayments) -> RecordingWire:
    """Install a :class:`RecordingWire` in ``payments`` and return it."""
    wire = RecordingWire(payments.client._wire)
    payments.client._wire = wire  # type: ignore[assignment]
    return wire


def header(request: WireRequest, name: str) -> str | None:
    """The value of header ``name`` (any spelling) in ``request``, or ``None``."""
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None

"""A recording wrapper around a Stripe client's wire backend, either face (the unit tests).

    wire = record(payments)        # every request from now on is kept in wire.sent
    (post,) = wire.posts()
    header(post, "Idempotency-Key")
"""

from __future__ import annotations

from typing import Any

from egress.adapters.stripe import StripePayments, SyncStripePayments
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


class SyncRecordingWire(RecordingWire):
    """The same, around a SyncApiClient's (blocking) wire backend."""

    def send(self, request: WireRequest) -> WireResponse:  # type: ignore[override]
        self.sent.append(request)
        response: WireResponse = self.inner.send(request)
        return response

    def close(self) -> None:
        self.inner.close()


def record(payments: StripePayments | SyncStripePayments) -> RecordingWire:
    """Install a :class:`RecordingWire` in ``payments`` (either face) and return it."""
    kind = SyncRecordingWire if isinstance(payments, SyncStripePayments) else RecordingWire
    wire = kind(payments.client._wire)
    payments.client._wire = wire  # type: ignore[assignment]
    return wire


def header(request: WireRequest, name: str) -> str | None:
    """The value of header ``name`` (any spelling) in ``request``, or ``None``."""
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None

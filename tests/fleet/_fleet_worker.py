"""Worker processes for test_fleet_processes (importable by ``spawn``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from egress import Pipeline, RateLimiter
from egress.payments import Money, PaymentRequest
from egress.stores.redis import RedisIdempotencyStore, RedisStore


def limited_calls(url: str, prefix: str, rate: float, seconds: float,
                  barrier: Any) -> dict[str, Any]:
    """Call through a shared limiter for ``seconds`` after the barrier; report each call's wall
    time, any error, and whether the store ended on shared state."""
    store = RedisStore(url, prefix=prefix, retry_min=0.2, retry_max=0.5)
    # burst=3: a worker descheduled for a moment (a loaded 2-core box) catches up on the slots it
    # missed instead of losing them; the window measured excludes the first burst.
    pipeline = Pipeline(RateLimiter(rate, burst=3, max_wait=5.0, name="stripe", store=store))
    pipeline.execute_sync("warm-up", lambda: None)  # connect and count this instance first
    times: list[float] = []
    errors: list[str] = []
    barrier.wait(timeout=60)
    end = time.time() + seconds
    while time.time() < end:
        try:
            pipeline.execute_sync("charge", lambda: None)
        except Exception as exc:
            errors.append(repr(exc))
        else:
            times.append(time.time())
    down = store.down
    store.close()
    return {"times": times, "errors": errors, "down": down}


def run_limited(queue: Any, *args: Any) -> None:
    queue.put(limited_calls(*args))


def charge_once(url: str, prefix: str, stripe_url: str, api_key: str, barrier: Any,
                queue: Any) -> None:
    """Create the payment for reference 'order-race' at the barrier; report its id."""
    from egress.adapters.stripe import StripePayments

    async def main() -> str:
        store = RedisIdempotencyStore(url, prefix=prefix)
        async with StripePayments(api_key, base_url=stripe_url, store=store) as payments:
            barrier.wait(timeout=60)
            payment = await payments.create(PaymentRequest(
                amount=Money.from_minor(2000, "USD"), reference="order-race",
                payment_method="pm_card_visa"))
        await store.aclose()
        store.close()
        return payment.id

    queue.put(asyncio.run(main()))

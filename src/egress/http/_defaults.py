"""The default pipeline of an HTTP client, outermost first:

1. ``Bulkhead(max_connections, max_queue=10 × max_connections)``: private to the client; a flood of
   callers waits in a bounded queue (at most ``max_wait``, never past the deadline) or fails fast.
2. ``Retry(on=retry_on(retry_hook), budget=RetryBudget(name="http:<origin>"))``: three attempts,
   full-jitter backoff, server hints honoured; the budget is shared by every client of that origin.
3. ``CircuitBreaker("http:<origin>")``: one per origin, shared; counts 5xx, transport failures and
   timeouts, never 4xx. Tuned for a remote API rather than resilience4j's generic defaults: it
   judges after 20 calls, stays open 5 s at first and twice as long each time it re-opens (up to
   60 s), and lets 3 probes through; slow-call detection is off (each attempt's ``total`` limit
   already turns a hung call into a counted timeout).
4. the client's ``rate_limiter``, if any: one token per attempt.

The call's deadline (``deadline=`` per call, or the client's default) is set on the call context
by ``Pipeline.execute``; every layer reads it, and each attempt's wire timeouts are capped by it.
"""

from __future__ import annotations

from egress._pipeline import Pipeline, Policy
from egress.events import EventSink
from egress.http._options import ClientOptions
from egress.http._safety import retry_on
from egress.policies.breaker import CircuitBreaker, CountWindow
from egress.policies.budget import RetryBudget
from egress.policies.bulkhead import Bulkhead
from egress.policies.retry import Retry

__all__ = ["default_pipeline"]

QUEUE_FACTOR = 10
#: The per-origin breaker's settings (see the module docstring).
BREAKER_WINDOW = 50
BREAKER_MINIMUM_CALLS = 20
BREAKER_WAIT_IN_OPEN = 5.0
BREAKER_WAIT_MULTIPLIER = 2.0
BREAKER_MAX_WAIT_IN_OPEN = 60.0
BREAKER_HALF_OPEN_CALLS = 3


def default_pipeline(options: ClientOptions, origin: str, sink: EventSink) -> Pipeline:
    """The pipeline a client of ``origin`` with ``options`` gets when it is given none
    (``sink``: the client's own, guarded)."""
    connections = options.max_connections
    policies: list[Policy] = [
        Bulkhead(connections, max_queue=connections * QUEUE_FACTOR),
        Retry(on=retry_on(options.retry_hook), budget=RetryBudget(name=f"http:{origin}")),
        CircuitBreaker(
            f"http:{origin}", window=CountWindow(BREAKER_WINDOW),
            minimum_calls=BREAKER_MINIMUM_CALLS, wait_in_open=BREAKER_WAIT_IN_OPEN,
            wait_multiplier=BREAKER_WAIT_MULTIPLIER, max_wait_in_open=BREAKER_MAX_WAIT_IN_OPEN,
            half_open_calls=BREAKER_HALF_OPEN_CALLS, slow_call_duration=None,
            clock=options.clock, sink=sink),
    ]
    if options.rate_limiter is not None:
        policies.append(options.rate_limiter)
    return Pipeline(*policies, clock=options.clock, sink=sink)

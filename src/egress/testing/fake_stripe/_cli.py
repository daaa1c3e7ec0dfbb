"""``egress fake-stripe``: run the fake Stripe on 127.0.0.1 until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from egress.errors import ConfigurationError
from egress.testing.fake_stripe._faults import CHAOS_PROFILES, RateLimit, describe_profiles
from egress.testing.fake_stripe._server import DEFAULT_API_KEY, FakeStripe

__all__ = ["DEFAULT_PORT", "add_parser", "run"]

DEFAULT_PORT = 12111

_EPILOG = """\
example:
  egress fake-stripe --port 0 --chaos flaky --faults 'payment_intents.create: 500, 500'

fault specs (repeat --faults; rules separated by ';'):
  'payment_intents.create: 500, 500, 429 retry-after=2'   scripted, then normal
  '*: 5% 503, 2% reset, 1% latency seconds=0.2'            a share of requests
  'POST@0.5-3: 100% 503'                                  a time window
faults: <status>, 429 [retry-after=S|retry-after-date=S|retry-after-raw=X],
  lock-timeout, key-in-use, stored-500, latency, reset, idle-close, black-hole [commit=true],
  commit-then-reset, commit-then-500, slow-drip, truncate, malformed-json, ok

control endpoint while running: GET/POST/DELETE /_fake/faults, GET /_fake/ledger,
  GET /_fake/events, GET /_fake/stats, POST /_fake/reset
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``fake-stripe`` subcommand on the ``egress`` parser."""
    parser = sub.add_parser(
        "fake-stripe", help="run a fault-injecting fake Stripe on 127.0.0.1",
        description="A fake Stripe (PaymentIntents, refunds, idempotency, webhooks) that "
                    "misbehaves on command.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--chaos", choices=list(CHAOS_PROFILES), default="none",
                        help="a named chaos profile (default none)")
    parser.add_argument("--faults", action="append", default=[], metavar="SPEC",
                        help="fault rules, see below (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="seed for fault draws and ids")
    parser.add_argument("--webhook-url", default=None, help="deliver signed events here")
    parser.add_argument("--webhook-secret", default=None,
                        help="whsec_… signing secret (generated if not given)")
    parser.add_argument("--idempotency-ttl", type=float, default=None, metavar="SECONDS",
                        help="forget idempotency keys after this long (default 24 h)")
    parser.add_argument("--rate-limit", default=None, metavar="RATE[/BURST]",
                        help="token bucket over all API routes, e.g. 25/10")
    parser.add_argument("--search-lag", type=float, default=0.0, metavar="SECONDS",
                        help="delay before new PaymentIntents show in search")
    parser.add_argument("--list-profiles", action="store_true",
                        help="describe the chaos profiles and exit")


def _rate_limit(text: str | None) -> RateLimit | None:
    if text is None:
        return None
    rate, _, burst = text.partition("/")
    try:
        return RateLimit(rate=float(rate), burst=int(burst) if burst else max(1, int(float(rate))))
    except ValueError:
        raise ConfigurationError(f"--rate-limit must be RATE[/BURST], got {text!r}") from None


def build(args: argparse.Namespace) -> FakeStripe:
    """The server the parsed arguments describe (not started)."""
    extra = {}
    if args.idempotency_ttl is not None:
        extra["idempotency_ttl"] = args.idempotency_ttl
    return FakeStripe(chaos=args.chaos, faults=";".join(args.faults) or None, seed=args.seed,
                      port=args.port, webhook_url=args.webhook_url,
                      webhook_secret=args.webhook_secret, rate_limit=_rate_limit(args.rate_limit),
                      search_lag=args.search_lag, **extra)


async def _serve(fake: FakeStripe) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"fake Stripe listening on {fake.url}  (chaos={fake.profile.name}, "
              f"seed={fake.seed})", flush=True)
        print(f"  api_base={fake.url}  any sk_test_… key works, e.g. {DEFAULT_API_KEY}")
        if fake.faults.rules:
            print("  fault rules:\n    " + fake.faults.describe().replace("\n", "\n    "))
        if fake.webhook_url is not None:
            print(f"  webhooks -> {fake.webhook_url} (signing secret {fake.webhook_secret})")
        print("  control: /_fake/faults /_fake/ledger /_fake/events /_fake/stats; Ctrl-C stops",
              flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    if args.list_profiles:
        print(describe_profiles())
        return 0
    try:
        fake = build(args)
    except ConfigurationError as exc:
        print(f"egress fake-stripe: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(fake))
    except OSError as exc:
        print(f"egress fake-stripe: cannot listen on port {args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    ledger = fake.ledger.summary()
    print(f"stopped; ledger: {ledger}", flush=True)
    return 0

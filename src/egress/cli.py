"""The ``egress`` command line (also ``python -m egress``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack

__all__ = ["main"]

_CHAOS = ("none", "flaky", "outage", "rate-limited", "ambiguous")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egress", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="egress: call external services reliably.\n\nTry the demo: a fake Stripe "
                    "loses answers on purpose, and every payment\nis still charged exactly once.",
        epilog="example:\n  egress demo --chaos outage\n\n"
               "'egress COMMAND --help' describes a command.")
    parser.add_argument("--version", action="version", version=f"egress {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="push payments through a misbehaving fake Stripe and check the ledger",
        description="Starts a fake Stripe on a free loopback port with a chaos profile, pushes "
                    "payments through StripePayments (default pipeline, SQLite idempotency "
                    "store), reconciles every unknown outcome, and checks the provider's ledger: "
                    "charges equal succeeded payments. Exits 1 when that invariant fails.",
        epilog="example:\n  egress demo --chaos outage --payments 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--payments", type=int, default=500, help="payments to make (500)")
    demo.add_argument("--concurrency", type=int, default=16, help="payments in flight (16)")
    demo.add_argument("--chaos", choices=_CHAOS, default="ambiguous",
                      help="how the fake misbehaves (ambiguous: charges whose answer is lost)")
    demo.add_argument("--seed", type=int, default=7, help="seeds payments and faults (7)")
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    demo.add_argument("--no-resilience", action="store_true",
                      help="plain retries without idempotency keys or breaker, to compare")
    demo.add_argument("--dashboard", type=int, nargs="?", const=0, default=None, metavar="PORT",
                      help="serve the live dashboard on 127.0.0.1:PORT (a free port if none) "
                           "while the demo runs, and print its URL")
    demo.add_argument("--workers", type=int, default=None, metavar="N",
                      help="run N worker processes sharing one rate limit, retry budget and "
                           "idempotency store through Redis")
    demo.add_argument("--redis", metavar="URL", default=None,
                      help="the Redis for --workers (default: a private redis-server on a free "
                           "loopback port)")
    from egress.testing.fake_stripe._cli import add_parser as add_fake_stripe_parser

    add_fake_stripe_parser(sub)
    return parser


def _version() -> str:
    from importlib.metadata import version

    return version("egress")


def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from egress.demo import DemoOptions, run_demo
    from egress.demo._view import live_progress, render_report
    from egress.errors import ConfigurationError

    try:
        options = DemoOptions(payments=args.payments, concurrency=args.concurrency,
                              chaos=args.chaos, seed=args.seed,
                              resilience=not args.no_resilience)
        fleet = None
        if args.workers is not None or args.redis is not None:
            from egress.demo._fleet import FleetOptions

            fleet = FleetOptions(workers=args.workers or 2, redis_url=args.redis)
    except ValueError as exc:
        print(f"egress demo: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=args.json)
    try:
        with ExitStack() as serving:
            sink = None
            if args.dashboard is not None:
                from egress.observability.dashboard import DashboardSink, serve_dashboard

                sink = DashboardSink()
                server = serving.enter_context(serve_dashboard(sink, port=args.dashboard))
                print(f"egress demo: live dashboard at {server.url}",
                      file=sys.stderr if args.json else sys.stdout, flush=True)
            if args.json or not console.is_terminal:
                report = run_demo(options, fleet=fleet, sink=sink)
            else:
                with ExitStack() as stack:
                    report = run_demo(options, fleet=fleet, sink=sink,
                                      on_start=lambda progress: stack.enter_context(
                                          live_progress(console, progress)))
    except ConfigurationError as exc:  # --workers: Redis unreachable, a worker failed
        print(exc, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        render_report(console, report)
    return 0 if report.invariant_ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "fake-stripe":
        from egress.testing.fake_stripe._cli import run as run_fake_stripe

        return run_fake_stripe(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

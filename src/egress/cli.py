"""The ``egress`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egress", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="push calls through a flaky upstream and report")
    demo.add_argument("--calls", type=int, default=1000, help="logical calls to make")
    demo.add_argument("--failure-rate", type=float, default=0.3,
                      help="share of attempts that fail (0..1)")
    demo.add_argument("--seed", type=int, default=7)
    from egress.testing.fake_stripe._cli import add_parser as add_fake_stripe_parser

    add_fake_stripe_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from egress._policy_demo import run_policy_demo

        return run_policy_demo(calls=args.calls, failure_rate=args.failure_rate, seed=args.seed)
    if args.command == "fake-stripe":
        from egress.testing.fake_stripe._cli import run as run_fake_stripe

        return run_fake_stripe(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

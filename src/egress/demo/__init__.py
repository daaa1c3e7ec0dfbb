"""``egress demo``: payments through a misbehaving fake Stripe, with the ledger's verdict."""

from egress.demo._scenario import DemoOptions, DemoReport, Progress, plan_payments, run_demo

__all__ = ["DemoOptions", "DemoReport", "Progress", "plan_payments", "run_demo"]

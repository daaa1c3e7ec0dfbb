"""``payments.reconciled``: how a payment operation was settled by asking the provider."""

from __future__ import annotations

from typing import Any

from egress.events import Reconciled
from egress.payments import IdempotencyKeeper
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing import FakeClock, RecordingSink


class Provider:
    """A KeyedOperation whose provider holds ``found`` (or nothing)."""

    operation, reference, fingerprint = "create", "o-1", "fp"

    def __init__(self, found: str | None) -> None:
        self.found = found

    async def send(self, key: str, *, resumed: bool) -> str:
        raise AssertionError("reconcile never sends")

    async def fetch(self, result_id: str) -> str:
        return result_id

    async def settle(self, record: Any) -> str | None:
        return self.found

    def result_id(self, result: str) -> str:
        return result

    async def lookup(self) -> str | None:
        return None


async def test_reconcile_says_whether_the_provider_held_a_result() -> None:
    sink = RecordingSink()
    keeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                               clock=FakeClock(auto_advance=False), sink=sink)
    assert await keeper.reconcile(Provider("pi_1")) == "pi_1"
    assert await keeper.reconcile(Provider(None)) is None
    assert [(e.operation, e.how) for e in sink.of(Reconciled)] == [
        ("create", "found"), ("create", "absent")]


async def test_reconciliations_are_counted_by_how() -> None:
    from prometheus_client import CollectorRegistry

    from egress.events import FanOutSink
    from egress.observability.prometheus import PrometheusSink

    registry = CollectorRegistry()
    keeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                               clock=FakeClock(auto_advance=False),
                               sink=FanOutSink([PrometheusSink(registry=registry)]))
    await keeper.reconcile(Provider("pi_1"))
    await keeper.reconcile(Provider(None))
    await keeper.reconcile(Provider(None))
    for how, count in (("found", 1), ("absent", 2)):
        assert registry.get_sample_value("egress_reconciled_total",
                                         {"operation": "create", "how": how}) == count

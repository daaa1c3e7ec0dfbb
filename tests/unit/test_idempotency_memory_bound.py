"""MemoryIdempotencyStore is bounded, and never forgets a record still in doubt (issue 16 §5).

Record times come from a FakeClock's wall time, as the keeper writes them.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.errors import ConfigurationError, ProviderUnavailable
from egress.payments import PROVIDER_KEY_LIFETIME, IdempotencyRecord, RecordState
from egress.stores.idempotency_memory import DEFAULT_MAX_RECORDS, MemoryIdempotencyStore
from egress.testing import FakeClock

DAY = PROVIDER_KEY_LIFETIME
IN_DOUBT = (RecordState.PENDING, RecordState.UNKNOWN)


async def pay(store: MemoryIdempotencyStore, clock: FakeClock, reference: str,
              outcome: RecordState | None) -> IdempotencyRecord:
    """Reserve a record now, then (unless ``outcome`` is None) move it to ``outcome``."""
    record, inserted = await store.reserve(
        IdempotencyRecord.new("s", "create", reference, "fp", clock.wall()))
    assert inserted
    if outcome is not None:
        done = record.with_state(outcome, clock.wall(), result_id="pi_1")
        assert await store.replace(done, expected_key=record.key)
        return done
    return record


async def test_settled_records_past_the_key_lifetime_go_and_doubtful_ones_stay() -> None:
    clock = FakeClock(auto_advance=False)
    store = MemoryIdempotencyStore(max_records=100)
    await pay(store, clock, "pending", None)
    await pay(store, clock, "unknown", RecordState.UNKNOWN)
    await pay(store, clock, "paid", RecordState.SUCCEEDED)
    await pay(store, clock, "declined", RecordState.FAILED)
    clock.advance(DAY - 1)
    for i in range(96):  # up to the cap, everything still young
        await pay(store, clock, f"young-{i}", RecordState.SUCCEEDED)
    assert await store.get("s", "create", "paid") is not None
    clock.advance(2)  # the first four are now a key lifetime old
    await pay(store, clock, "next", RecordState.SUCCEEDED)
    assert await store.get("s", "create", "paid") is None
    assert await store.get("s", "create", "declined") is None
    for reference in ("pending", "unknown"):
        kept = await store.get("s", "create", reference)
        assert kept is not None and kept.state in IN_DOUBT
    assert len(store) == 99


async def test_a_store_full_of_records_that_must_stay_refuses_instead_of_forgetting() -> None:
    clock = FakeClock(auto_advance=False)
    store = MemoryIdempotencyStore(max_records=10)
    for i in range(5):
        await pay(store, clock, f"doubt-{i}", None)
    for i in range(5):
        await pay(store, clock, f"young-{i}", RecordState.SUCCEEDED)  # settled, but young
    clock.advance(30 * DAY)  # in-doubt records stay however old; the settled ones may go
    await pay(store, clock, "after", None)
    assert len(store) == 6
    for i in range(4):
        await pay(store, clock, f"more-{i}", None)
    with pytest.raises(ProviderUnavailable, match="full") as caught:
        await pay(store, clock, "one-too-many", None)
    assert "doubt-" not in str(caught.value)
    assert len(store) == 10
    for i in range(5):
        assert await store.get("s", "create", f"doubt-{i}") is not None
    # A reference already held is still answered at the cap: its record is found, not inserted.
    again, inserted = await store.reserve(
        IdempotencyRecord.new("s", "create", "doubt-0", "fp", clock.wall()))
    assert not inserted and again.state is RecordState.PENDING


async def test_a_steady_stream_of_payments_stays_bounded() -> None:
    clock = FakeClock(auto_advance=False)
    store = MemoryIdempotencyStore(max_records=300)
    peak = 0
    for i in range(3000):  # 100 a day for 30 days, one in a hundred left in doubt
        await pay(store, clock, f"o-{i}", None if i % 100 == 0 else RecordState.SUCCEEDED)
        peak = max(peak, len(store))
        clock.advance(DAY / 100)
    assert peak <= 300  # and never refused (pay would raise): the settled ones went as they aged
    doubtful = [r for r in store.records() if r.state in IN_DOUBT]
    assert len(doubtful) == 30  # every one of them, from day 1 on
    settled = [r for r in store.records() if r.state not in IN_DOUBT]
    assert min(r.updated_at for r in settled) > clock.wall() - 3 * DAY  # the old ones went


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from([*RecordState, None]),
                          st.floats(0, 2 * DAY)), max_size=80),
       st.integers(1, 12))
async def test_no_record_in_doubt_or_young_is_ever_dropped(
        steps: list[tuple[int, RecordState | None, float]], cap: int) -> None:
    clock = FakeClock(auto_advance=False)
    store = MemoryIdempotencyStore(max_records=cap)
    for n, (ref, outcome, wait) in enumerate(steps):
        clock.advance(wait)
        before = {r.ident: r for r in store.records()}
        try:
            record, _ = await store.reserve(
                IdempotencyRecord.new("s", "create", f"r{ref}-{n}", "fp", clock.wall()))
        except ProviderUnavailable:
            assert len(before) == cap
            continue
        if outcome is not None:
            await store.replace(record.with_state(outcome, clock.wall()),
                                expected_key=record.key)
        after = {r.ident for r in store.records()}
        for ident, old in before.items():
            if ident not in after:  # only settled and past the retention may go
                assert old.state not in IN_DOUBT
                assert old.updated_at < clock.wall() - DAY
        assert len(after) <= cap


def test_settings_are_checked() -> None:
    assert MemoryIdempotencyStore().max_records == DEFAULT_MAX_RECORDS
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ConfigurationError, match="max_records"):
            MemoryIdempotencyStore(max_records=bad)  # type: ignore[arg-type]
    for retention in (DAY - 1, float("nan"), "x"):
        with pytest.raises(ConfigurationError, match="retention"):
            MemoryIdempotencyStore(retention=retention)  # type: ignore[arg-type]
    assert MemoryIdempotencyStore(retention=7 * DAY).retention == 7 * DAY


async def test_a_settled_record_stays_for_the_whole_key_lifetime() -> None:
    clock = FakeClock(auto_advance=False)
    store = MemoryIdempotencyStore(max_records=2)
    await pay(store, clock, "paid", RecordState.SUCCEEDED)
    clock.advance(DAY - 60)  # a minute short of the provider's key lifetime
    await pay(store, clock, "b", RecordState.SUCCEEDED)
    with pytest.raises(ProviderUnavailable):
        await pay(store, clock, "c", RecordState.SUCCEEDED)
    assert await store.get("s", "create", "paid") is not None
    clock.advance(61)
    await pay(store, clock, "c", RecordState.SUCCEEDED)  # now "paid" may go, and does
    assert await store.get("s", "create", "paid") is None

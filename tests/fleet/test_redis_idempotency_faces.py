"""RedisIdempotencyStore's records in doubt (for ``egress.status``) and its blocking face (for
``SyncStripePayments``), against a real redis-server and FakeStripe.

The blocking face runs the very coroutines of the async face under ``drive()``: these tests
check that both faces see and write the same records, that the doubt index stays in step with
every write, and that a sync process killed mid-payment resumes with its key on Redis.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import redis

from _sync_faces import FACES, async_port, close, in_threads, kill_while_held, stripe
from egress import status
from egress.adapters.stripe import SyncStripePayments
from egress.errors import OutcomeUnknown, SharedStateUnavailableError
from egress.payments import IdempotencyRecord, Money, PaymentRequest, PaymentStatus, RecordState
from egress.payments._drive import SyncIdempotencyStore
from egress.stores.redis import RedisIdempotencyStore
from egress.stores.redis._idempotency import SCOPE_REFRESH
from egress.stores.redis._link import RedisLink
from egress.testing import FakeClock
from egress.testing.fake_stripe import FakeStripe, Fault

WORKER = Path(__file__).with_name("_sync_redis_worker.py")
CARD = "4242424242424242"


def rec(reference: str, at: float, scope: str = "acct") -> IdempotencyRecord:
    return IdempotencyRecord.new(scope, "create", f"{reference} {CARD}", "fp-secret", at)


def order(reference: str = "order-1") -> PaymentRequest:
    return PaymentRequest(amount=Money("12.00", "EUR"), reference=reference,
                          payment_method="pm_card_visa")


def doubt_sizes(url: str, prefix: str) -> int:
    """Members of every doubt index under ``prefix`` (read directly, not through the store)."""
    with redis.Redis.from_url(url) as raw:
        return sum(int(raw.zcard(key)) for key in raw.scan_iter(match=f"{prefix}:idem:*:doubt"))


def test_status_lists_redis_records_in_doubt_across_scopes(redis_url: str, prefix: str) -> None:
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    try:
        for i in range(6):  # 0, 2, 4 end in doubt; 4 is then reconciled; 5 is in another scope
            new = rec(f"order-{i}", 1_700_000_000.0 + i, scope="acct" if i < 5 else "other")
            store.reserve_sync(new)
            if i % 2 == 0 or i == 5:
                assert store.replace_sync(new.with_state(RecordState.UNKNOWN, new.updated_at),
                                          expected_key=new.key)
        settled = store.get_sync("acct", "create", f"order-4 {CARD}")
        assert settled is not None and settled.state is RecordState.UNKNOWN
        assert store.replace_sync(settled.with_state(RecordState.SUCCEEDED, 1_700_000_050.0,
                                                     "pi_1"), expected_key=settled.key)

        count, oldest = store.in_doubt_sync(2)
        assert count == 3
        assert [r.reference for r in oldest] == [f"order-0 {CARD}", f"order-2 {CARD}"]
        assert store.in_doubt_sync(10)[1][-1].scope == "other"  # every scope is read
        assert store.in_doubt_sync(0) == (3, [])

        clock = FakeClock(wall=1_700_000_100.0)
        found = status(stores=(), idempotency=[store], doubt_limit=1, clock=clock).in_doubt
        assert found["count"] == 3 and "errors" not in found
        [first] = found["records"]
        assert first["store"] == "RedisIdempotencyStore" and first["age"] == 100.0
        assert first["reference"].startswith("order-")  # masked: the card shape is gone
        for secret in (CARD, "fp-secret", "egress-create-"):
            assert secret not in repr(found)  # no card shape, fingerprint or key
    finally:
        store.close()


async def test_both_faces_share_records_and_the_doubt_index(redis_url: str, prefix: str) -> None:
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    try:
        first = rec("a", 1000.0)
        assert store.reserve_sync(first) == (first, True)
        assert await store.reserve(rec("a", 2000.0)) == (first, False)  # the sync claim holds
        doubt = first.with_state(RecordState.UNKNOWN, 1001.0)
        assert await store.replace(doubt, expected_key=first.key)
        assert store.in_doubt_sync(5) == (1, [doubt]) == await store.in_doubt(5)
        assert not store.replace_sync(doubt, expected_key="another key")
        assert store.get_sync(*first.ident) == doubt
        assert store.delete_sync(*first.ident, expected_key=first.key)
        assert await store.get(*first.ident) is None
        assert store.in_doubt_sync(5) == (0, [])

        late = rec("b", 1000.0)
        await store.reserve(late)
        await store.replace(late.with_state(RecordState.UNKNOWN, 1001.0), expected_key=late.key)
        assert doubt_sizes(redis_url, prefix) == 1
        assert store.purge_sync(1002.0) == 1  # purge drops the record and its doubt entry
        assert doubt_sizes(redis_url, prefix) == 0 and await store.in_doubt(5) == (0, [])
    finally:
        await store.aclose()
        store.close()


def test_a_doubt_entry_whose_record_is_gone_or_settled_is_dropped(redis_url: str,
                                                                 prefix: str) -> None:
    """Records expire by TTL, and an older egress wrote no doubt index: what the index says is
    checked against the record itself, and stale entries are removed on the way."""
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    try:
        records = [rec(f"o-{i}", 1000.0 + i) for i in range(4)]
        for r in records:
            store.reserve_sync(r)
            store.replace_sync(r.with_state(RecordState.UNKNOWN, r.updated_at),
                               expected_key=r.key)
        keys = [store._keys(*r.ident)[0] for r in records]
        with redis.Redis.from_url(redis_url) as raw:
            raw.delete(keys[0])  # as if its TTL ran out
            settled = store.get_sync(*records[1].ident)
            assert settled is not None
            raw.set(keys[1], raw.get(keys[1]).replace(b'"unknown"', b'"succeeded"'))
        count, listed = store.in_doubt_sync(1)
        assert count == 2 and [r.reference for r in listed] == [records[2].reference]
        assert doubt_sizes(redis_url, prefix) == 2
    finally:
        store.close()


def test_a_lost_scope_set_comes_back_within_the_refresh(redis_url: str, prefix: str) -> None:
    """A failover or a flush may lose the scope set: each store adds its scopes again every
    SCOPE_REFRESH seconds, so status() finds their records in doubt again without a restart."""
    clock = FakeClock()
    link = RedisLink(url=redis_url, client=None, async_client=None, timeout=2.0, retry_min=0.5,
                     retry_max=5.0, prefix=prefix, clock=clock)
    store = RedisIdempotencyStore(link=link)
    try:
        first = rec("a", 1000.0)
        store.reserve_sync(first)
        store.replace_sync(first.with_state(RecordState.UNKNOWN, 1001.0), expected_key=first.key)
        assert store.in_doubt_sync(5)[0] == 1
        with redis.Redis.from_url(redis_url) as raw:
            raw.delete(store._scope_set)
        store.reserve_sync(rec("b", 1002.0))
        assert store.in_doubt_sync(5)[0] == 0  # the scope is unknown to the set for now
        clock.advance(SCOPE_REFRESH)
        store.reserve_sync(rec("c", 1003.0))
        assert store.in_doubt_sync(5)[0] == 1
    finally:
        store.close()


def test_threads_sharing_one_sync_client_on_redis_charge_once(redis_url: str,
                                                               prefix: str) -> None:
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    with FakeStripe(seed=0) as fake, SyncStripePayments(fake.api_key, base_url=fake.url,
                                                        store=store) as payments:
        start = threading.Barrier(4, timeout=60)

        def buy() -> str:
            start.wait()
            return payments.create(order("order-threads")).id  # 409s are waited out

        ids = in_threads(buy, 4)
        assert len(ids) == 4 and len(set(ids)) == 1
        assert len(fake.ledger.charges) == 1
    store.close()


def test_status_lists_a_redis_it_cannot_reach_as_an_error_and_never_raises(prefix: str) -> None:
    store = RedisIdempotencyStore("redis://127.0.0.1:9/0", prefix=prefix, timeout=0.5)
    found = status(stores=(), idempotency=[store]).in_doubt
    store.close()
    assert found["count"] == 0 and found["errors"] == [{
        "store": "RedisIdempotencyStore", "error": "SharedStateUnavailableError"}]


def test_a_store_with_sync_methods_is_what_the_sync_faces_accept() -> None:
    store = RedisIdempotencyStore("redis://127.0.0.1:9", prefix="unused")
    assert isinstance(store, SyncIdempotencyStore)
    store.close()


def test_redis_down_fails_closed_on_the_sync_face_and_nothing_is_sent(prefix: str) -> None:
    with FakeStripe(seed=0) as fake:
        # A closed loopback port: the connection is refused at once.
        store = RedisIdempotencyStore("redis://127.0.0.1:9/0", prefix=prefix, timeout=0.5)
        with (SyncStripePayments(fake.api_key, base_url=fake.url, store=store) as payments,
              pytest.raises(SharedStateUnavailableError, match="nothing was sent")):
            payments.create(order())
        store.close()
        assert fake.stats().get("route.payment_intents.create", 0) == 0
        assert not fake.ledger.charges


@pytest.mark.parametrize("face", FACES)
async def test_stripe_on_redis_lost_answers_are_in_doubt_then_reconciled(
        face: str, redis_url: str, prefix: str) -> None:
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    async with FakeStripe(seed=0) as fake:
        fake.faults.script("payment_intents.create", Fault.commit_then_reset(),
                           *[Fault.reset()] * 2)
        client = stripe(face, fake.api_key, base_url=fake.url, store=store)
        port = async_port(client)
        with pytest.raises(OutcomeUnknown):
            await port.create(order())
        count, [stored] = store.in_doubt_sync(5)
        assert count == 1 and stored.state is RecordState.UNKNOWN
        assert status(stores=(), idempotency=[store]).in_doubt["count"] == 1

        found = await port.reconcile("order-1")
        assert found is not None and found.status is PaymentStatus.SUCCEEDED
        assert (await port.create(order())).id == found.id  # a replay, not a second charge
        assert store.in_doubt_sync(5) == (0, [])
        await close(client)
        assert len(fake.ledger.charges) == 1
    await store.aclose()
    store.close()


def test_a_killed_sync_process_resumes_with_its_key_on_redis(redis_url: str,
                                                             prefix: str) -> None:
    """A sync worker is SIGKILLed while Stripe holds its create (the charge goes through after
    the process is gone). A new process's client on the same Redis sends the key claimed before
    the first byte, and Stripe charges once."""
    with FakeStripe(seed=0) as fake:
        fake.faults.script("payment_intents.create", Fault.latency(2.0))
        kill_while_held(fake, [sys.executable, str(WORKER), fake.url, fake.api_key, redis_url,
                               prefix])

        store = RedisIdempotencyStore(redis_url, prefix=prefix)
        with SyncStripePayments(fake.api_key, base_url=fake.url, store=store) as restarted:
            stored = store.get_sync(restarted.scope, "create", "order-42")
            assert stored is not None and stored.state is RecordState.PENDING
            payment = restarted.create(order("order-42"))  # may meet 409 first: the kill's POST
            again = store.get_sync(restarted.scope, "create", "order-42")
        store.close()
        assert payment.status is PaymentStatus.SUCCEEDED
        assert again is not None and again.key == stored.key  # the key claimed before the kill
        assert again.state is RecordState.SUCCEEDED
        assert len(fake.ledger.charges) == 1
        assert fake.ledger.charges[0].payment_intent == payment.id

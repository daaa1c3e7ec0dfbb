"""Payments under real process death and real process races (issue 17 §1, "Payments").

FakeStripe runs in this process (a thread); workers are real processes (``_payments_worker``)
on one SQLite idempotency file, killed for real with SIGKILL. After every death a new process
picks up the same file, and FakeStripe's ledger is the judge: exactly one live charge per
reference, every reference reported paid was charged, nothing charged that the client does not
know about.

``EGRESS_RELIABILITY_KILLS`` sets how many ``kill -9`` rounds the chaos run makes (CI: 3) and
``EGRESS_RELIABILITY_ORDERS`` how many references it pays (CI: 12), for a longer run locally.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _payments_worker import CRASH_POINTS, order, pay, read_reports

from egress.adapters.stripe import StripePayments
from egress.errors import OutcomeUnknown
from egress.events import Reconciled
from egress.payments import PaymentStatus, RecordState
from egress.payments.idempotency import (
    IdempotencyKeyReused,
    IdempotentReplay,
    OutcomeUnknownRaised,
)
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import RecordingSink
from egress.testing.fake_stripe import FakeStripe

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("EGRESS_RELIABILITY_KILLS", "3"))
ORDERS = int(os.environ.get("EGRESS_RELIABILITY_ORDERS", "12"))
# A fork server imports egress once; each worker forks from it (four fresh interpreters each
# importing egress take seconds on a loaded 2-core box; forking pytest itself is unsafe).
# ``_pytest.config`` too: run as the ``pytest`` script, every child re-runs that script as its
# ``__mp_main__`` (multiprocessing drops the main path it was given for '__main__' preloading),
# and the script imports it: about a second per worker on a busy machine, unless preloaded.
# The one fork server of a test run is shared with tests/fleet, and the list set last before it
# starts wins: this one carries theirs too (a module that cannot be imported is skipped).
PROCS = multiprocessing.get_context("forkserver")
PROCS.set_forkserver_preload(["_pytest.config", "egress", "egress.adapters.stripe",
                              "egress.stores.redis", "_fleet_worker", "_payments_worker"])


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(seed=17) as server:
        yield server


def run(target: Any, *args: Any, **kwargs: Any) -> Any:
    process = PROCS.Process(target=target, args=args, kwargs=kwargs)
    process.start()
    return process


def finish(process: Any, timeout: float = 90) -> None:
    process.join(timeout)
    assert process.exitcode == 0, process.exitcode


def one_live_charge_each(fake: FakeStripe, references: list[str]) -> dict[str, str]:
    """The ledger invariant: each reference has exactly one live charge. Returns its intent.

    Read twice: in process, and over FakeStripe's control API as any other process would."""
    remote = httpx.get(fake.url + "/_fake/ledger", timeout=10).json()
    assert remote["double_charges"] == {}
    assert remote["summary"]["live_charges"] == len(references)
    by_reference = fake.ledger.charges_by_reference()
    assert set(by_reference) <= set(references)  # no charge without a known reference
    assert not fake.ledger.double_charges()
    intents = {}
    for reference in references:
        (charge,) = by_reference[reference]
        intents[reference] = charge.payment_intent
    return intents


async def settle_everything(fake: FakeStripe, db: Path, references: list[str],
                            sink: RecordingSink) -> dict[str, str]:
    """The restart after the last death: a fresh client on the same file pays every reference
    the documented way (OutcomeUnknown: reconcile, then call again) and returns the ids."""
    ids: dict[str, str] = {}
    async with StripePayments(fake.api_key, base_url=fake.url, store=db, rate_limit=None,
                              sink=sink) as payments:
        for reference in references:
            for _ in range(4):
                try:
                    ids[reference] = (await payments.create(order(reference))).id
                    break
                except OutcomeUnknown:
                    await payments.reconcile(reference)
    assert set(ids) == set(references)
    return ids


@pytest.mark.reliability(
    area="Payments",
    fault="three worker processes on one SQLite file are killed (SIGKILL): one before its POST "
          "leaves, one after it left (the provider acted), one after reading the answer; "
          "another process restarts on the same file",
    expected="at each point: the key was on disk before the first byte; the restart sends the "
             "same key (Stripe replays where it acted); exactly one charge per reference")
def test_workers_killed_at_each_crash_point_then_restarted_charge_once(
        fake: FakeStripe, tmp_path: Path) -> None:
    db, log = tmp_path / "keys.db", tmp_path / "log.jsonl"
    references = {point: f"order-{point}" for point in CRASH_POINTS}
    killed = [run(pay, fake.url, fake.api_key, str(db), str(log), [references[point]],
                  crash_at=point) for point in CRASH_POINTS]
    for process in killed:
        process.join(90)
    assert [p.exitcode for p in killed] == [-9] * 3  # each really died, at its point
    assert read_reports(log) == []  # and said nothing
    with SqliteIdempotencyStore(db) as store:
        before = {r.reference: r for r in store.records_sync()}
    assert {r.state for r in before.values()} == {RecordState.PENDING}
    charged = {c.reference for c in fake.ledger.charges}
    assert charged == {references["after-send"], references["after-reply"]}

    # The restart: this process, a new client on the same file.
    sink = RecordingSink()
    ids = asyncio.run(settle_everything(fake, db, list(references.values()), sink))
    assert one_live_charge_each(fake, list(references.values())) == ids
    with SqliteIdempotencyStore(db) as store:
        after = {r.reference: r for r in store.records_sync()}
    for reference, record in after.items():
        assert record.key == before[reference].key  # resumed with the stored key
        assert record.state is RecordState.SUCCEEDED and record.result_id == ids[reference]
    # Stripe replayed the two it had acted on; it charged the third once, on the restart.
    assert len(sink.of(IdempotentReplay)) == 2
    assert fake.stats().get("idempotent_replays", 0) == 2
    assert len(sink.of(IdempotencyKeyReused)) == 3
    assert sink.of(OutcomeUnknownRaised) == []


@pytest.mark.reliability(
    area="Payments",
    fault=f"a worker paying {ORDERS} orders under the 'ambiguous' chaos profile (commit-then-"
          f"reset, commit-then-500, truncated and malformed answers, black holes) is killed "
          f"with SIGKILL at {KILLS} random moments and restarted on the same SQLite file; then "
          f"a final restart reconciles",
    expected="exactly one live charge per reference; every id a worker reported is the one "
             "charged; nothing charged that the client does not know")
def test_kill_9_at_random_moments_under_chaos_then_reconcile(tmp_path: Path) -> None:
    # The 'ambiguous' profile, then more of the same, plain failures and slow answers (so that
    # no worker can finish its orders before the kill comes).
    with FakeStripe(chaos="ambiguous", seed=17, faults=(
            "POST: 10% commit-then-reset, 4% commit-then-500, 4% truncate, 4% malformed-json, "
            "2% black-hole commit=true, 8% reset, 8% 503, 25% latency seconds=0.1")) as fake:
        run_kills_then_reconcile(fake, tmp_path)


def run_kills_then_reconcile(fake: FakeStripe, tmp_path: Path) -> None:
    db, log = tmp_path / "keys.db", tmp_path / "log.jsonl"
    references = [f"order-{n}" for n in range(ORDERS)]
    rng = random.Random(1717)
    deaths = 0
    for round_ in range(KILLS):
        ready = PROCS.Event()
        worker = run(pay, fake.url, fake.api_key, str(db), str(log), references,
                     seed=round_, attempt_timeout=0.5, ready=ready)
        assert ready.wait(60)
        time.sleep(rng.uniform(0.05, 0.5))
        worker.kill()  # SIGKILL, wherever it is
        worker.join(30)
        deaths += worker.exitcode == -9
    assert deaths >= 1  # at least one worker was still running when the signal came
    stats = fake.stats()
    chaos = sum(v for k, v in stats.items() if k.startswith("fault."))
    stored_500s = stats.get("fault.commit-then-500", 0)
    fake.faults.clear()  # the provider recovers; the last restart settles every reference
    sink = RecordingSink()
    ids = asyncio.run(settle_everything(fake, db, references, sink))

    intents = one_live_charge_each(fake, references)
    assert intents == ids
    # After the recovery only a key whose saved answer is a 500 (commit-then-500: Stripe
    # replays it) can still say OutcomeUnknown; reconcile settled each of those.
    assert len(sink.of(OutcomeUnknownRaised)) <= stored_500s
    assert len(sink.of(Reconciled)) == len(sink.of(OutcomeUnknownRaised))
    check = fake.ledger.verify(paid=references)
    assert check.ok, check
    for report in read_reports(log):  # what the killed workers told their callers holds
        if "id" in report:
            assert report["id"] == ids[report["reference"]]
        else:  # unknown (then settled), or proven unsent (then paid by a later call)
            assert report["error"] in ("OutcomeUnknown", "ProviderUnavailable"), report
    with SqliteIdempotencyStore(db) as store:
        records = store.records_sync()
    assert {r.reference for r in records} == set(references)
    assert {r.state for r in records} == {RecordState.SUCCEEDED}
    assert chaos > 0  # the chaos really happened


@pytest.mark.reliability(
    area="Payments",
    fault="four processes pay the same 8 references at once, in different orders, through "
          "one SQLite idempotency store, with 40% of creates slowed by 50 ms at the provider",
    expected="every process gets the same payment id per reference; exactly one charge per "
             "reference; every record SUCCEEDED")
def test_four_processes_racing_on_the_same_references_charge_once(
        fake: FakeStripe, tmp_path: Path) -> None:
    fake.faults.load("payment_intents.create: 40% latency seconds=0.05")
    db = tmp_path / "keys.db"
    references = [f"race-{n}" for n in range(8)]
    start = PROCS.Event()
    readies = [PROCS.Event() for _ in range(4)]
    logs = [tmp_path / f"log-{n}.jsonl" for n in range(4)]
    workers = [run(pay, fake.url, fake.api_key, str(db), str(logs[n]), references, seed=n,
                   ready=readies[n], start=start) for n in range(4)]
    for ready in readies:
        assert ready.wait(60)
    start.set()
    for worker in workers:
        finish(worker)

    intents = one_live_charge_each(fake, references)
    for n in range(4):
        reports = read_reports(logs[n])
        assert {r["reference"]: r.get("id") for r in reports} == intents, reports
    with SqliteIdempotencyStore(db) as store:
        records = store.records_sync()
    assert len(records) == len(references)
    assert {r.state for r in records} == {RecordState.SUCCEEDED}
    assert len({r.key for r in records}) == len(references)  # one key per reference, shared
    # Three of four processes found another's work: as a replay or a record to return.
    assert fake.stats()["route.payment_intents.create"] >= len(references)
    payment = asyncio.run(_get(fake, intents["race-0"]))
    assert payment.status is PaymentStatus.SUCCEEDED


async def _get(fake: FakeStripe, ident: str) -> Any:
    async with StripePayments(fake.api_key, base_url=fake.url) as payments:
        return await payments.get(ident)

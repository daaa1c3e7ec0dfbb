"""Real processes on one real Redis: a shared limit, Redis killed mid-run, a payment race."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
from _fleet_worker import charge_once, run_limited

from egress.stores.redis._server import LocalRedisServer
from egress.testing.fake_stripe import FakeStripe

pytestmark = pytest.mark.slow

RATE = 50.0
WORKERS = 4
# A fork server imports egress once; each worker forks from it (spawning four interpreters that
# each import egress takes seconds on a loaded 2-core box; forking pytest itself is unsafe).
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["egress", "egress.stores.redis", "egress.adapters.stripe",
                              "_fleet_worker"])


def start_workers(url: str, prefix: str, seconds: float) -> tuple[list[Any], Any, Any]:
    barrier = SPAWN.Barrier(WORKERS + 1)
    queue = SPAWN.Queue()
    procs = [SPAWN.Process(target=run_limited, args=(queue, url, prefix, RATE, seconds, barrier))
             for _ in range(WORKERS)]
    for p in procs:
        p.start()
    return procs, barrier, queue


def collect(procs: list[Any], queue: Any) -> list[dict[str, Any]]:
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return results


def count(times: list[float], start: float, end: float) -> int:
    return sum(start <= t < end for t in times)


def test_four_processes_share_one_limit(redis_url: str, prefix: str) -> None:
    seconds = 4.0
    procs, barrier, queue = start_workers(redis_url, prefix, seconds)
    barrier.wait(timeout=120)
    began = time.time()
    results = collect(procs, queue)
    assert [r["errors"] for r in results] == [[]] * WORKERS
    every = [t for r in results for t in r["times"]]
    # Skip the first and last half second (processes start and stop a moment apart).
    window = (began + 0.5, began + seconds - 0.5)
    rate = count(every, *window) / (window[1] - window[0])
    assert RATE * 0.95 <= rate <= RATE * 1.05, rate  # unshared, 4 processes would make 200/s
    for r in results:  # and no process starved: each got a fair part
        assert count(r["times"], *window) / (window[1] - window[0]) > RATE / WORKERS / 2


def test_redis_killed_mid_run_then_back(private_redis: LocalRedisServer, prefix: str) -> None:
    seconds, kill_at, restart_at = 7.0, 1.5, 3.5
    procs, barrier, queue = start_workers(private_redis.url, prefix, seconds)
    barrier.wait(timeout=120)
    began = time.time()
    time.sleep(kill_at)
    private_redis.kill()
    time.sleep(restart_at - kill_at)
    private_redis.start()
    results = collect(procs, queue)
    assert [r["errors"] for r in results] == [[]] * WORKERS  # no call failed
    assert [r["down"] for r in results] == [False] * WORKERS  # every process is shared again
    # While Redis was gone each process held to its share of the limit (50/s over 4 instances).
    outage = (began + kill_at + 0.3, began + restart_at)
    length = outage[1] - outage[0]
    for r in results:
        mine = count(r["times"], *outage)
        assert mine <= RATE / WORKERS * length * 1.1 + 2, mine
        assert mine >= RATE / WORKERS * length * 0.5, mine  # and still worked
    # Shared again (within the 0.5 s backoff cap and a heartbeat): the fleet's rate is the limit.
    after = (began + restart_at + 1.5, began + seconds - 0.3)
    every = [t for r in results for t in r["times"]]
    rate = count(every, *after) / (after[1] - after[0])
    assert RATE * 0.9 <= rate <= RATE * 1.1, rate


def test_two_processes_racing_on_one_reference_charge_once(redis_url: str, prefix: str) -> None:
    with FakeStripe() as fake:
        barrier = SPAWN.Barrier(2)
        queue = SPAWN.Queue()
        procs = [SPAWN.Process(target=charge_once,
                               args=(redis_url, prefix, fake.url, fake.api_key, barrier, queue))
                 for _ in range(2)]
        for p in procs:
            p.start()
        ids = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        assert ids[0] == ids[1]  # both got the one payment
        assert len(fake.ledger.charges) == 1
        assert not fake.ledger.double_charges()

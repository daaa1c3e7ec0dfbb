"""The soak: ``egress demo``'s payments in rounds through one long-lived ``StripePayments``
against one fake Stripe (``egress fake-stripe``, in its own process so that this one holds
only the client), alternating the ``ambiguous`` and ``outage`` chaos profiles.

Each round makes fresh payments (new references), re-drives what an outage refused, reconciles
every unknown outcome, and asks the fake's ledger for its verdict (no double charge, nothing
lost). Between rounds the fake forgets everything (``POST /_fake/reset``), and its faults restart
(the outage's window opens at each outage round's first request). After each round the run
samples this process's RSS, the Python heap
traced since the warm-up round (tracemalloc), open file descriptors and sockets
(``/proc/self/fd``), threads and the event loop's tasks. The client is closed at the end and the
sockets must be back to what they were before it opened.

``python tests/soak/_soak.py --minutes N`` (or ``scripts/soak --minutes N``) prints a row per
round; ``tests/soak/test_soak.py`` runs a short one and asserts the trends.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from egress.adapters.stripe import StripePayments
from egress.demo import DemoOptions, Progress, plan_payments
from egress.demo._scenario import (
    DEMO_RATE_LIMIT,
    DEMO_SETTLE_AFTER,
    DEMO_TIMEOUTS,
    _reconcile,
    _redrive,
    _submit,
)
from egress.payments import PaymentRequest
from egress.testing.fake_stripe._ledger import Charge, Ledger

PROFILES = ("ambiguous", "outage")
OUTAGE_AT_ONCE = "*@0.0-2.5: 100% 503"


@dataclass(frozen=True, slots=True)
class Sample:
    """The process after a round (or before the first, or after closing the client)."""

    rss_kb: int
    traced_kb: int  # Python heap allocated since tracing started and still alive
    fds: int
    sockets: int
    threads: int
    tasks: int  # the loop's tasks besides the soak's own

    @classmethod
    def take(cls) -> Sample:
        gc.collect()
        fds = sockets = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # closed between listdir and readlink (the listing's own fd)
                continue
            fds += 1
            sockets += target.startswith("socket:")
        rss = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
                   .splitlines() if line.startswith("VmRSS:"))
        traced = tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else 0
        try:
            tasks = len(asyncio.all_tasks()) - 1
        except RuntimeError:  # no running loop
            tasks = 0
        return cls(rss, traced, fds, sockets, threading.active_count(), tasks)


@dataclass(frozen=True, slots=True)
class Round:
    index: int
    chaos: str
    payments: int
    seconds: float
    phases: tuple[float, float, float]  # seconds: submit, re-drive, reconcile
    outcomes: dict[str, int]
    reconciled: int
    still_unknown: int
    ledger_ok: bool
    verdict: str
    after: Sample


@dataclass(slots=True)
class SoakReport:
    before: Sample | None = None  # the fake running, the client not yet open
    rounds: list[Round] = field(default_factory=list)
    closed: Sample | None = None  # after the client closed


class FakeProcess:
    """``egress fake-stripe --port 0`` in a child process, driven through ``/_fake/…``."""

    api_key = "sk_test_soak"

    def __init__(self, seed: int) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "egress.cli", "fake-stripe", "--port", "0", "--seed",
             str(seed)], stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        first = self._process.stdout.readline()  # printed once it listens
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
        if found is None:
            self.stop()
            raise RuntimeError(f"the fake did not start: {first!r}")
        self.url = found.group(1)

    def call(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def restart(self, chaos: str, seed: int) -> None:
        """Forget every object, key and charge; then act out ``chaos`` from the next request."""
        self.call("POST", "/_fake/reset")
        if chaos == "outage":
            # The outage profile's 503 window, opened at the round's first request: the profile
            # keeps 0.5 s of health first, inside which a fast client finished a CI-sized round
            # without meeting the outage at all.
            self.call("POST", "/_fake/faults", {"spec": OUTAGE_AT_ONCE, "replace": True,
                                                "seed": seed})
            return
        self.call("POST", "/_fake/faults", {"chaos": chaos, "replace": True, "seed": seed})

    def ledger(self) -> Ledger:
        """The fake's ledger, rebuilt here so that its own ``verify`` gives the verdict."""
        data = self.call("GET", "/_fake/ledger")
        assert isinstance(data, dict)
        ledger = Ledger()
        for charge in data["charges"]:
            ledger.record_charge(Charge(**charge))
        return ledger

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()


async def _round(payments: StripePayments, fake: FakeProcess, index: int, chaos: str,
                 size: int, concurrency: int, seed: int) -> Round:
    fake.restart(chaos, seed + index)
    plan = plan_payments(DemoOptions(payments=size, concurrency=concurrency, chaos=chaos,
                                     seed=seed * 100_000 + index))  # new references each round
    progress = Progress(total=size)
    paid: set[str] = set()
    unknown: list[PaymentRequest] = []
    refused: list[PaymentRequest] = []
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    await asyncio.gather(*(_submit(payments, request, gate=gate, progress=progress, paid=paid,
                                   unknown=unknown, refused=refused) for request in plan))
    submitted = time.monotonic()
    await _redrive(payments, refused, gate=gate, paid=paid, unknown=unknown,
                   redriven=progress.redriven)
    redriven = time.monotonic()
    counter: Counter[str] = Counter()
    pending = await _reconcile(payments, unknown, paid, counter)
    ended = time.monotonic()
    check = fake.ledger().verify(paid, unknown=pending)
    return Round(index, chaos, size, ended - started,
                 (submitted - started, redriven - submitted, ended - redriven),
                 dict(progress.outcomes), sum(counter.values()), len(pending), check.ok,
                 str(check), Sample.take())


async def _soak(fake: FakeProcess, folder: Path, *, rounds: int | None, seconds: float | None,
                size: int, concurrency: int, seed: int, report: SoakReport,
                on_round: Callable[[Round], None]) -> None:
    report.before = Sample.take()
    deadline = None if seconds is None else time.monotonic() + seconds
    async with StripePayments(fake.api_key, base_url=fake.url,
                              store=folder / "idempotency.sqlite3",
                              rate_limit=DEMO_RATE_LIMIT, timeouts=DEMO_TIMEOUTS,
                              settle_after=DEMO_SETTLE_AFTER) as payments:
        index = 0
        while (rounds is None or index < rounds) and \
                (deadline is None or time.monotonic() < deadline or index < 3):
            if index == 1:
                # Traced from the end of the warm-up round: what the client keeps from then on.
                tracemalloc.start()
            result = await _round(payments, fake, index, PROFILES[index % len(PROFILES)], size,
                                  concurrency, seed)
            report.rounds.append(result)
            on_round(result)
            index += 1
    await asyncio.sleep(0.1)  # let the transports' close callbacks run
    report.closed = Sample.take()


def run_soak(*, rounds: int | None = None, seconds: float | None = None, size: int = 100,
             concurrency: int = 64, seed: int = 11,
             on_round: Callable[[Round], None] = lambda _r: None) -> SoakReport:
    """Soak for ``rounds`` rounds or ``seconds`` (at least three rounds), ``size`` payments
    each."""
    report = SoakReport()
    fake = FakeProcess(seed)
    try:
        with tempfile.TemporaryDirectory(prefix="egress-soak-") as tmp:
            asyncio.run(_soak(fake, Path(tmp), rounds=rounds, seconds=seconds, size=size,
                              concurrency=concurrency, seed=seed, report=report,
                              on_round=on_round))
    finally:
        tracemalloc.stop()
        fake.stop()
    return report


HEADER = (f"{'round':>5} {'chaos':<10} {'pays':>5} {'secs':>6} {'phases':<14} {'ledger':<6} "
          f"{'unknown':>7} "
          f"{'RSS MB':>7} {'heap KB':>8} {'fds':>4} {'socks':>5} {'thr':>4} {'tasks':>5}")


def row(r: Round) -> str:
    s = r.after
    phases = "/".join(f"{p:.1f}" for p in r.phases)
    return (f"{r.index:>5} {r.chaos:<10} {r.payments:>5} {r.seconds:>6.1f} {phases:<14} "
            f"{'ok' if r.ledger_ok else 'FAIL':<6} {r.still_unknown:>7} {s.rss_kb / 1024:>7.1f} "
            f"{s.traced_kb:>8} {s.fds:>4} {s.sockets:>5} {s.threads:>4} {s.tasks:>5}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=float(
        os.environ.get("EGRESS_SOAK_SECONDS", "300")) / 60, help="how long (default 5)")
    parser.add_argument("--payments", type=int, default=300, help="per round (default 300)")
    parser.add_argument("--concurrency", type=int, default=64, help="in flight (default 64)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(HEADER, flush=True)
    report = run_soak(seconds=args.minutes * 60, size=args.payments,
                      concurrency=args.concurrency, seed=args.seed,
                      on_round=lambda r: print(row(r), flush=True))
    print(f"before the client: {asdict(report.before) if report.before else None}")
    print(f"after closing it:  {asdict(report.closed) if report.closed else None}")
    problems = check(report, concurrency=args.concurrency)
    for problem in problems:
        print("PROBLEM:", problem)
    print("soak:", "FAIL" if problems else "ok")
    return 1 if problems else 0


def check(report: SoakReport, *, concurrency: int = 64, per_payment_kb: float = 4.0) -> list[str]:
    """What the soak found wrong; empty when every round kept the invariants.

    Memory: the client's caches fill up to their caps (the aiohttp backend's parsed-URL cache
    holds 1,024 URLs, one search URL per new reference: ~1.7 MB after ~1,000 payments), so the heap
    rises for a while and then must stay flat. A short run cannot reach the plateau: it bounds
    the growth per payment (a leak keeping a response or a task per payment is far above it).
    A run of six or more rounds after the warm-up also checks the plateau: the last third of
    the rounds may not go above the middle third by more than 512 KB.
    """
    problems = [f"round {r.index} ({r.chaos}): {r.verdict}" for r in report.rounds
                if not r.ledger_ok]
    steady = report.rounds[1:]  # after the warm-up round
    if len(steady) >= 2:
        first, last = steady[0].after, steady[-1].after
        payments = sum(r.payments for r in steady[1:])
        allowed = 512 + per_payment_kb * payments
        if last.traced_kb - first.traced_kb > allowed:
            problems.append(f"the heap grew {last.traced_kb - first.traced_kb} KB over "
                            f"{payments} payments (allowed {allowed:.0f} KB)")
    if len(steady) >= 6:
        third = len(steady) // 3
        middle = max(r.after.traced_kb for r in steady[third:2 * third])
        late = max(r.after.traced_kb for r in steady[2 * third:])
        if late > middle + 512:
            problems.append(f"no plateau: the heap reached {late} KB in the last third of the "
                            f"rounds, {middle} KB in the middle third")
    before = report.before
    for r in report.rounds:
        if r.after.tasks > 0:
            problems.append(f"round {r.index}: {r.after.tasks} tasks left on the loop")
        if before is not None and r.after.sockets > before.sockets + 2 * concurrency:
            problems.append(f"round {r.index}: {r.after.sockets} sockets open (the pool holds "
                            f"at most about {concurrency})")
    if before is not None and report.closed is not None:
        if report.closed.sockets > before.sockets:
            problems.append(f"{report.closed.sockets - before.sockets} sockets still open "
                            "after the client closed")
        if report.closed.fds > before.fds:
            problems.append(f"{report.closed.fds - before.fds} file descriptors still open "
                            "after the client closed")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())

"""Creating payments: egress StripePayments against the official stripe SDK. Prints a table.

    uv run python bench/payments.py [--count 3000] [--rounds 3] [--no-pin] [--only NAME ...]

A local nginx (bench/http_client.py's helper, pinned to one CPU) answers every
``POST /v1/payment_intents`` with the same canned, succeeded PaymentIntent (about 1.4 kB, the
shape of API version 2024-06-20), so the server is never the bottleneck and every client does
the same work: build and send one form POST, parse one JSON answer.

Modes (each run in its own subprocess, so its peak RSS is its own):

- ``egress-memory``: ``StripePayments`` with the in-memory idempotency store;
- ``egress-sqlite``: the same with ``SqliteIdempotencyStore`` (a fresh file on disk per run,
  default durability), and ``egress-sqlite-power`` with ``durability="power"``;
- ``stripe-requests`` (sync; c=32 runs 32 threads), ``stripe-httpx``, ``stripe-aiohttp``: the
  stripe SDK's ``StripeClient`` with each of its HTTP clients;
- ``raw-aiohttp``: one aiohttp session posting the same form and ``json.loads`` of the answer,
  the floor under any aiohttp-based client.

egress runs with ``rate_limit=None`` (the default limits Stripe's own 25/100 requests/s) and
``check_new_references=False`` (the default first looks a new reference up once, a second
request: see docs/idempotency.md); everything else is the default pipeline (deadline, retries,
breaker, bulkhead, a key stored before sending). Each mode runs at concurrency 1 and 32, in
``rounds`` interleaved rounds; the table shows medians, the spread (min-max of payments/s over
the rounds), p99 latency, peak RSS and CPU time per payment; ratios are against
``stripe-aiohttp`` at the same concurrency, by payments/s and by payments per CPU-second (on a
machine shared with other work, throughput follows what CPU the run got; the CPU per payment is
the steadier figure, and the throughput ratio on an idle machine). ``cpu-over-raw`` is the
client CPU per payment above ``raw-aiohttp`` (egress's own work per payment).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from http_client import nginx, pin

API_KEY = "sk_test_bench_0000000000000000"
INTENT: dict[str, Any] = {
    "id": "pi_3PbenchQd9Kx2Cgz1Yh5aB7c", "object": "payment_intent", "amount": 2000,
    "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 2000,
    "application": None, "application_fee_amount": None, "automatic_payment_methods": None,
    "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
    "client_secret": "pi_3PbenchQd9Kx2Cgz1Yh5aB7c_secret_Wq1bench0000000000000000",
    "confirmation_method": "automatic", "created": 1764547200, "currency": "usd",
    "customer": None, "description": None, "invoice": None, "last_payment_error": None,
    "latest_charge": "ch_3PbenchQd9Kx2Cgz1Yh5aB7d", "livemode": False,
    "metadata": {"egress_key_generation": "0", "reference": "bench"},
    "next_action": None, "on_behalf_of": None,
    "payment_method": "pm_1PbenchQd9Kx2CgzVisa0000",
    "payment_method_configuration_details": None,
    "payment_method_options": {"card": {"installments": None, "mandate_options": None,
                                        "network": None,
                                        "request_three_d_secure": "automatic"}},
    "payment_method_types": ["card"], "processing": None, "receipt_email": None,
    "review": None, "setup_future_usage": None, "shipping": None, "source": None,
    "statement_descriptor": None, "statement_descriptor_suffix": None, "status": "succeeded",
    "transfer_data": None, "transfer_group": None,
}
BODY = json.dumps(INTENT, separators=(",", ":"))
LOCATIONS = ("location = /v1/payment_intents { default_type application/json; "
             f"return 200 '{BODY}'; }}")
FORM = {"amount": "2000", "currency": "usd", "capture_method": "automatic", "confirm": "true",
        "metadata[reference]": "order-1", "payment_method": "pm_card_visa",
        "payment_method_types[0]": "card"}
MODES = ("egress-memory", "egress-sqlite", "egress-sqlite-power", "stripe-requests",
         "stripe-httpx", "stripe-aiohttp", "raw-aiohttp")
REFERENCE_MODE = "stripe-aiohttp"
RAW_MODE = "raw-aiohttp"
#: A mode ending in this (``egress-memory-offwire``, for bench/payment_overhead.py) answers in
#: process, without HTTP: egress's own payment work alone.
OFFWIRE = "-offwire"
CONCURRENCIES = (1, 32)


# -- the worker: one mode, one concurrency, in its own process ---------------------------------


def _off_the_wire(payments: Any) -> None:
    """Answer every POST with the canned intent in-process, without the HTTP client: what is
    left is egress's payment work alone (request, fingerprint, keeper, store, parse, events)."""
    from egress.http import Response
    from egress.http._headers import Headers

    content = BODY.encode()
    raw = ((b"Server", b"nginx"), (b"Date", b"Tue, 01 Dec 2026 05:00:00 GMT"),
           (b"Content-Type", b"application/json"),
           (b"Content-Length", str(len(content)).encode()), (b"Connection", b"keep-alive"))

    async def post(path: str, **_: Any) -> Response:
        return Response(200, Headers.from_raw(raw), content, method="POST", url=path)
    payments._flow._io.post = post


def _sdk_params(reference: str) -> dict[str, Any]:
    return {"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": True, "payment_method_types": ["card"],
            "metadata": {"reference": reference}}


async def _async_case(mode: str, url: str, stack: list[Callable[[], Awaitable[Any]]],
                      ) -> Callable[[str], Awaitable[Any]]:
    if mode.startswith("egress"):
        from egress.adapters.stripe import StripePayments
        from egress.payments import Money, PaymentRequest
        store: Any = None
        if mode.startswith("egress-sqlite"):
            from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
            folder = tempfile.mkdtemp(prefix="egress-bench-", dir=os.getcwd())
            kwargs: dict[str, Any] = {}
            if mode.endswith("-power"):
                kwargs["durability"] = "power"
            store = SqliteIdempotencyStore(Path(folder) / "keys.db", **kwargs)

            async def remove() -> None:
                store.close()
                shutil.rmtree(folder, ignore_errors=True)
            stack.append(remove)
        payments = StripePayments(API_KEY, base_url=url, store=store, rate_limit=None,
                                  check_new_references=False)
        stack.append(payments.aclose)
        if mode.endswith(OFFWIRE):
            _off_the_wire(payments)
        amount = Money("20.00", "USD")

        async def egress_create(reference: str) -> Any:
            return await payments.create(PaymentRequest(
                amount=amount, reference=reference, payment_method="pm_card_visa"))
        return egress_create
    if mode == RAW_MODE:
        import aiohttp
        session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"})
        stack.append(session.close)

        async def raw(reference: str) -> Any:
            form = dict(FORM, **{"metadata[reference]": reference})
            async with session.post(f"{url}/v1/payment_intents", data=form,
                                    headers={"Idempotency-Key": reference}) as response:
                return json.loads(await response.read())
        return raw
    import stripe
    http_client = (stripe.HTTPXClient() if mode == "stripe-httpx"
                   else stripe.AIOHTTPClient())
    client = stripe.StripeClient(API_KEY, base_addresses={"api": url},
                                 http_client=http_client)

    async def sdk(reference: str) -> Any:
        return await client.v1.payment_intents.create_async(params=_sdk_params(reference))

    async def close() -> None:
        await http_client.close_async()
    stack.append(close)
    return sdk


async def _run_async(mode: str, url: str, count: int, concurrency: int,
                     latencies: list[float]) -> tuple[float, float]:
    stack: list[Callable[[], Awaitable[Any]]] = []
    call = await _async_case(mode, url, stack)
    numbers = itertools.count()
    clock = time.perf_counter
    try:
        for _ in range(min(200, count)):  # warm up: connections, caches, imports
            await call(f"warm-{next(numbers)}")

        async def worker(n: int) -> None:
            for _ in range(n):
                reference = f"order-{next(numbers)}"
                started = clock()
                await call(reference)
                latencies.append(clock() - started)

        started, cpu = clock(), time.process_time()
        await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
        return clock() - started, time.process_time() - cpu
    finally:
        for close in reversed(stack):
            await close()


def _run_sync(url: str, count: int, concurrency: int,
              latencies: list[float]) -> tuple[float, float]:
    import stripe
    http_client = stripe.RequestsClient()
    client = stripe.StripeClient(API_KEY, base_addresses={"api": url}, http_client=http_client)
    numbers = itertools.count()
    clock = time.perf_counter

    def call() -> None:
        reference = f"order-{next(numbers)}"
        started = clock()
        client.v1.payment_intents.create(params=_sdk_params(reference))
        latencies.append(clock() - started)

    for _ in range(min(200, count)):
        call()
    latencies.clear()

    def worker(n: int) -> None:
        for _ in range(n):
            call()

    started, cpu = clock(), time.process_time()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, [count // concurrency] * concurrency))
    return clock() - started, time.process_time() - cpu


def worker_main(mode: str, url: str, count: int, concurrency: int) -> None:
    latencies: list[float] = []
    if mode == "stripe-requests":
        elapsed, cpu = _run_sync(url, count, concurrency, latencies)
    else:
        elapsed, cpu = asyncio.run(_run_async(mode, url, count, concurrency, latencies))
    done = len(latencies)
    ordered = sorted(latencies)
    print(json.dumps({
        "rate": done / elapsed, "p99_ms": ordered[int(0.99 * (done - 1))] * 1000,
        "cpu_us": cpu / done * 1e6,  # this process's CPU (all threads) over the timed calls
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


# -- the driver ---------------------------------------------------------------------------------


def run_one(mode: str, url: str, count: int, concurrency: int, env: dict[str, str],
            ) -> dict[str, float]:
    for attempt in range(2):  # a loaded machine can fail a run (e.g. a connect timing out)
        out = subprocess.run(
            [sys.executable, __file__, "--worker", mode, url, str(count), str(concurrency)],
            capture_output=True, text=True, env=env, timeout=600, check=False)
        if out.returncode == 0:
            break
        last = out.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"  {mode} c={concurrency} failed ({last[0]}); "
              f"{'running it again' if attempt == 0 else 'giving up'}", flush=True)
    else:
        raise RuntimeError(f"{mode} c={concurrency} failed twice:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def table(results: dict[tuple[str, int], list[dict[str, float]]], modes: list[str]) -> str:
    def median(key: tuple[str, int], field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    lines = ["| mode | c | payments/s (median) | spread | p99 ms | peak RSS MB | CPU µs/payment "
             "| cpu-over-raw µs | vs stripe-aiohttp: payments/s | per CPU-second |",
             "|" + "---|" * 10]
    for concurrency in CONCURRENCIES:
        for mode in modes:
            key = (mode, concurrency)
            if key not in results:
                continue
            rates = [r["rate"] for r in results[key]]
            ref = (REFERENCE_MODE, concurrency)
            ratio = (f"{median(key, 'rate') / median(ref, 'rate'):.2f}×" if ref in results
                     else "-")
            cpu_ratio = (f"{median(ref, 'cpu_us') / median(key, 'cpu_us'):.2f}×"
                         if ref in results else "-")
            raw = (RAW_MODE, concurrency)
            over = (f"{median(key, 'cpu_us') - median(raw, 'cpu_us'):.0f}" if raw in results
                    else "-")
            lines.append(
                f"| {mode} | {concurrency} | {median(key, 'rate'):.0f} | "
                f"{min(rates):.0f}-{max(rates):.0f} | {median(key, 'p99_ms'):.2f} | "
                f"{median(key, 'rss_mb'):.0f} | {median(key, 'cpu_us'):.0f} | {over} | {ratio} | "
                f"{cpu_ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="payments per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--only", nargs="*", choices=MODES, help="modes to run")
    args = parser.parse_args()
    modes = list(args.only or MODES)
    affinity, pinning = ("", "not pinned") if args.no_pin else pin()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with nginx(affinity, LOCATIONS) as url:
        print(f"nginx on {url} ({pinning}); {args.count} payments per run, {args.rounds} "
              f"interleaved rounds; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
              flush=True)
        for round_ in range(args.rounds):
            # Rotate the order each round, so no mode always runs first or last.
            order = modes[round_ % len(modes):] + modes[:round_ % len(modes)]
            for mode in order:
                for concurrency in CONCURRENCIES:
                    result = run_one(mode, url, args.count, concurrency, env)
                    results.setdefault((mode, concurrency), []).append(result)
                    print(f"  round {round_ + 1} {mode:20} c={concurrency:<3} "
                          f"{result['rate']:7.0f}/s p99 {result['p99_ms']:6.2f} ms "
                          f"cpu {result['cpu_us']:5.0f} µs", flush=True)
    print()
    print(table(results, modes))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()

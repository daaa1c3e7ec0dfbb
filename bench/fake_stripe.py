"""How many requests per second FakeStripe serves on this machine. Prints a table.

    uv run python bench/fake_stripe.py [--requests 3000] [--repeats 3]

Three placements of the server: on a background thread of this process (``with FakeStripe()``,
what tests and ``egress demo`` use), in this process's event loop (``async with FakeStripe()``),
and in a separate process (``egress fake-stripe``), which shows what the server does without
sharing the interpreter with the load generator. The client is aiohttp with keep-alive,
``concurrency`` requests in flight. Operations: ``create`` = POST create-and-confirm with a new
Idempotency-Key (a charge each), ``replay`` = the same POST with one key (the idempotency layer
answers), ``retrieve`` = GET one PaymentIntent. Each cell is the median of ``repeats`` runs of
``requests`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from egress.testing.fake_stripe import DEFAULT_API_KEY, FakeStripe

BODY = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "metadata[reference]": "bench"}
HEADERS = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


@contextlib.asynccontextmanager
async def placement(name: str) -> AsyncIterator[str]:
    if name == "thread":
        with FakeStripe() as fake:
            yield fake.url
    elif name == "same loop":
        async with FakeStripe() as fake:
            yield fake.url
    else:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "egress.cli", "fake-stripe", "--port", "0",
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        try:
            yield line.split()[4]
        finally:
            process.terminate()
            await process.wait()


async def run(url: str, op: str, requests: int, concurrency: int) -> float:
    counter = itertools.count()
    async with aiohttp.ClientSession(url, headers=HEADERS,
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async with http.post("/v1/payment_intents", data=BODY,
                             headers={"Idempotency-Key": "replayed"}) as response:
            intent = (await response.json())["id"]

        def call() -> Callable[[], Awaitable[None]]:
            async def create() -> None:
                key = f"k{next(counter)}-{time.perf_counter_ns()}"
                async with http.post("/v1/payment_intents", data=BODY,
                                     headers={"Idempotency-Key": key}) as r:
                    await r.read()

            async def replay() -> None:
                async with http.post("/v1/payment_intents", data=BODY,
                                     headers={"Idempotency-Key": "replayed"}) as r:
                    await r.read()

            async def retrieve() -> None:
                async with http.get(f"/v1/payment_intents/{intent}") as r:
                    await r.read()

            return {"create": create, "replay": replay, "retrieve": retrieve}[op]

        fn = call()
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await fn()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"FakeStripe throughput, requests/s (median of {args.repeats} x {args.requests}); "
          f"python {sys.version.split()[0]}")
    print(f"| {'server':<16} | {'operation':<9} | {'1 in flight':>11} | {'32 in flight':>12} |")
    print(f"|{'-' * 18}|{'-' * 11}|{'-' * 13}|{'-' * 14}|")
    for where in ("thread", "same loop", "other process"):
        for op in ("create", "replay", "retrieve"):
            cells = []
            for concurrency in (1, 32):
                rates = []
                for _ in range(args.repeats):
                    async with placement(where) as url:
                        rates.append(await run(url, op, args.requests, concurrency))
                cells.append(statistics.median(rates))
            print(f"| {where:<16} | {op:<9} | {cells[0]:>11,.0f} | {cells[1]:>12,.0f} |",
                  flush=True)


if __name__ == "__main__":
    asyncio.run(main())

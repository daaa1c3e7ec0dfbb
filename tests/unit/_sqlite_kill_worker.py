"""Run by test_idempotency_sqlite_durability in a child process that the test SIGKILLs.

    python _sqlite_kill_worker.py URL API_KEY DB_PATH REFERENCES

Creates one payment per reference (``order-0`` ...), eight at a time, with a SQLite store at
``DB_PATH`` (its file was created with the durability under test; the mode is read from the
name). Prints ``ready`` once set up; exits 0 when every payment is made.
"""

from __future__ import annotations

import asyncio
import sys

from egress.adapters.stripe import StripePayments
from egress.payments import Money, PaymentRequest
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore


async def main(url: str, api_key: str, path: str, references: int) -> None:
    store = SqliteIdempotencyStore(path, durability="power" if "power" in path else "process")
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(references):
        queue.put_nowait(n)
    async with StripePayments(api_key, base_url=url, store=store, rate_limit=None) as payments:
        print("ready", flush=True)

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                await payments.create(PaymentRequest(
                    amount=Money("10.00", "USD"), reference=f"order-{n}",
                    payment_method="pm_card_visa"))

        await asyncio.gather(*(worker() for _ in range(8)))
    store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))

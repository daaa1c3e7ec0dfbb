"""Closing a client releases what it opened: found by the soak (tests/soak/_soak.py), whose
file descriptors stayed 3 above the baseline after ``StripePayments`` closed."""

from __future__ import annotations

import gc
import os
from pathlib import Path

from egress.adapters.stripe import StripePayments
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore


def _open_files_under(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


async def test_aclose_closes_the_store_it_opened_from_a_path(tmp_path: Path) -> None:
    async with StripePayments("sk_test_x", store=tmp_path / "keys.sqlite3",
                              base_url="http://127.0.0.1:9") as payments:
        assert _open_files_under(tmp_path)  # the database (and its WAL) are open while in use
    gc.collect()
    assert payments.store is not None  # still referenced: only aclose can have closed it
    assert _open_files_under(tmp_path) == []


async def test_aclose_leaves_a_store_it_was_given_open(tmp_path: Path) -> None:
    store = SqliteIdempotencyStore(tmp_path / "keys.sqlite3")
    async with StripePayments("sk_test_x", store=store, base_url="http://127.0.0.1:9"):
        pass
    assert _open_files_under(tmp_path)  # the caller's store: the caller closes it
    store.close()
    assert _open_files_under(tmp_path) == []

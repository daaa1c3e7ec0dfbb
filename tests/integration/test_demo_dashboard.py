"""`egress demo --dashboard PORT`: the URL is printed and the page is served while the demo runs,
with the demo's own idempotency store: the payments it leaves in doubt are listed."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest

from egress.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_the_demo_serves_its_dashboard_while_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    status: list[int] = []
    demo = threading.Thread(target=lambda: status.append(main(
        ["demo", "--json", "--payments", "200", "--chaos", "ambiguous", "--dashboard", str(port)])))
    demo.start()
    snapshots: list[dict[str, object]] = []
    deadline = time.monotonic() + 120
    # Read the page's data all through the run: ambiguous answers leave payments in doubt (in
    # the demo's SQLite idempotency store) until they are reconciled at the end.
    while demo.is_alive() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
                snapshots.append(json.loads(r.read()))
        except OSError:
            pass
        time.sleep(0.05)
    demo.join(120)
    assert status == [0]
    assert snapshots and "breakers" in snapshots[0]
    doubts = [s["in_doubt"] for s in snapshots]
    assert not any("errors" in d for d in doubts), doubts  # the store was read, never closed
    seen = [record for d in doubts for record in d["records"]]  # type: ignore[index]
    assert max(d["count"] for d in doubts) >= 1, "no payment in doubt was ever shown"
    assert {r["store"] for r in seen} == {"SqliteIdempotencyStore"}
    assert all(r["reference"].startswith("order-7-") and "key" not in r for r in seen)
    out = capsys.readouterr()
    assert f"live dashboard at http://127.0.0.1:{port}/" in out.err
    assert json.loads(out.out)["invariant_ok"] is True

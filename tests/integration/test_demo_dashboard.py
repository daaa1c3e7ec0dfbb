"""`egress demo --dashboard PORT`: the URL is printed and the page is served while the demo runs."""

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
        ["demo", "--json", "--payments", "200", "--chaos", "outage", "--dashboard", str(port)])))
    demo.start()
    snapshot = None
    deadline = time.monotonic() + 60
    while snapshot is None and demo.is_alive() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
                snapshot = json.loads(r.read())
        except OSError:
            time.sleep(0.05)
    demo.join(120)
    assert status == [0]
    assert snapshot is not None and "breakers" in snapshot
    out = capsys.readouterr()
    assert f"live dashboard at http://127.0.0.1:{port}/" in out.err
    assert json.loads(out.out)["invariant_ok"] is True

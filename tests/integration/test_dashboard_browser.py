"""The live dashboard in a real headless browser (Debian's chromium driven by Playwright).

While the demo runs its outage profile, the page must show the breaker open, then closed again,
without a reload; it must load with no console error, and its text must hold none of the
secrets planted in the calls it observes. ``scripts/test`` installs chromium when it is absent.
Set ``EGRESS_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _loopback import LoopbackServer, Reply
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from egress import Pipeline, Retry, Secret, StatusError, attempts
from egress.demo import DemoOptions, DemoReport, run_demo
from egress.http import BearerAuth, SyncApiClient, retry_on
from egress.observability.dashboard import DashboardSink, serve_dashboard
from egress.payments.idempotency import IdempotencyRecord, RecordState
from egress.stores.idempotency_memory import MemoryIdempotencyStore

pytestmark = pytest.mark.slow

PLANTED = ("sk_live_51HplantedKey", "tok-planted-bearer", "4242424242424242", "cvc=987",
           "whsec_plantedsecret")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    assert CHROMIUM, "chromium is not installed (scripts/test installs Debian's chromium)"
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 860})

            def on_console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    errors.append(message.text)

            tab.on("console", on_console)
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab, errors
        finally:
            browser.close()


def plant_secrets(sink: DashboardSink) -> None:
    """Failing calls whose names, auth and queries carry secrets, observed by the sink."""
    server = LoopbackServer().start()
    try:
        server.script("/v1/charge", Reply(503), Reply(503))
        pipeline = Pipeline(Retry(on=retry_on(None), stop=attempts(2)), sink=sink)
        with SyncApiClient(server.url + "/v1", auth=BearerAuth(Secret("tok-planted-bearer")),
                           pipeline=pipeline, sink=sink) as client, pytest.raises(StatusError):
            client.get("/charge", params={"api_key": "sk_live_51HplantedKey"},
                       operation="charge card 4242424242424242 cvc=987 "
                                 "key=sk_live_51HplantedKey whsec_plantedsecret "
                                 "/v1/x?api_key=sk_live_51HplantedKey")
    finally:
        server.stop()


def in_doubt_store() -> MemoryIdempotencyStore:
    """An idempotency store holding one payment in doubt whose reference holds a card number."""
    store = MemoryIdempotencyStore()
    record = IdempotencyRecord.new("acct", "charge", "order-planted 4242424242424242",
                                   "fp-planted", time.time())
    store.reserve_sync(record)  # sync: Playwright's sync API runs a loop in this thread
    store.replace_sync(record.with_state(RecordState.UNKNOWN, record.updated_at),
                       expected_key=record.key)
    return store


def test_the_page_shows_the_breaker_open_during_the_outage_and_closed_after(
        page: tuple[Page, list[str]], tmp_path: Path) -> None:
    tab, errors = page
    sink = DashboardSink()
    plant_secrets(sink)
    report: list[DemoReport] = []
    with serve_dashboard(sink, interval=0.2) as server:
        tab.goto(server.url)
        tab.wait_for_function("document.getElementById('connection').textContent === 'live'",
                              timeout=15_000)
        # The outage begins 0.5 s after the first request: enough payments that a fast machine
        # is still paying then (200 took 0.46 s on an idle one, and the breaker never opened).
        demo = threading.Thread(target=lambda: report.append(run_demo(
            DemoOptions(payments=1000, concurrency=16, chaos="outage", seed=7), sink=sink)))
        demo.start()
        try:
            # Pushed live (no reload): the demo's breaker opens in the outage ...
            tab.wait_for_selector('tr[data-breaker^="http:"][data-state="open"]',
                                  timeout=60_000)
            open_text = tab.inner_text("#breakers")
            # ... and closes again once the provider is back.
            tab.wait_for_selector('tr[data-breaker^="http:"][data-state="closed"]',
                                  timeout=90_000)
            tab.wait_for_selector('#transitions li[data-to="closed"]', timeout=10_000)
        finally:
            demo.join(120)
        assert not demo.is_alive()
        plant_secrets(sink)  # again, so that they are among the recent events shown
        tab.wait_for_function(
            "document.getElementById('recent').textContent.includes('charge card')",
            timeout=10_000)
        with sink.watching(in_doubt_store()):  # a payment in doubt, its reference a card shape
            tab.wait_for_selector("#in-doubt tr:has-text('order-planted')", timeout=10_000)
            shot = os.environ.get("EGRESS_DASHBOARD_SCREENSHOT")
            tab.screenshot(path=shot or str(tmp_path / "dashboard.png"))
            text = tab.inner_text("body")

    assert "open" in open_text
    transitions = tab.inner_text("#transitions")
    assert "closed → open" in transitions and "→ closed" in transitions
    assert report and report[0].invariant_ok
    assert errors == []
    for secret in PLANTED:
        assert secret not in text, secret
    assert "charge card [card]" in text  # the planted call is shown, redacted
    assert "order-planted [card]" in text  # the payment in doubt too


def test_status_json_and_events_stream_hold_no_secret(page: Any) -> None:
    import urllib.request

    sink = DashboardSink()
    plant_secrets(sink)
    with serve_dashboard(sink) as server:
        body = urllib.request.urlopen(server.url + "status.json", timeout=10).read().decode()
        with urllib.request.urlopen(server.url + "events", timeout=10) as stream:
            first = stream.readline().decode()
    assert first.startswith("data: {")
    assert "charge card [card] cvc=***" in body
    for secret in PLANTED:
        assert secret not in body and secret not in first, secret

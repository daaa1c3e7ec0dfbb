"""A sync web app taking payments: a plain WSGI view over SyncStripePayments (as in Django/Flask).

    uv run python examples/wsgi_checkout.py

The view is ordinary blocking code: one ``SyncStripePayments`` per process (thread-safe, with a
SQLite idempotency store so keys survive a restart), ``payments.create(...)`` in the request,
and each outcome of the port turned into an HTTP answer:

* the payment: ``200``; the same order submitted twice (a double click, a browser retry) returns
  the same payment, charged once;
* ``PaymentDeclined``: ``402``, the customer tries another card;
* ``OutcomeUnknown`` (sent, no answer): ``202``, "pending": submitting the same order again (or a
  worker calling ``reconcile``) finishes it without charging twice;
* ``ProviderUnavailable`` (nothing was done): ``503`` with ``Retry-After``.

Everything runs on 127.0.0.1: FakeStripe in a thread, a threaded wsgiref server, urllib as the
browser. The fake's ledger proves the "charged once" claims.
"""

from __future__ import annotations

import json
import socketserver
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from egress.adapters.stripe import SyncStripePayments
from egress.errors import OutcomeUnknown, PaymentDeclined, ProviderUnavailable
from egress.payments import Money, PaymentRequest
from egress.testing import FakeStripe

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def checkout_app(payments: SyncStripePayments) -> Callable[[dict[str, Any], StartResponse],
                                                          Iterable[bytes]]:
    """The WSGI app: ``POST /checkout`` with ``order``, ``amount`` and ``card`` form fields."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        form = urllib.parse.parse_qs(environ["wsgi.input"].read(size).decode())
        request = PaymentRequest(amount=Money(form["amount"][0], "EUR"),
                                 reference=form["order"][0],  # the idempotency reference
                                 payment_method=form["card"][0])
        headers = [("Content-Type", "application/json")]
        try:
            payment = payments.create(request)
        except PaymentDeclined as declined:
            status, body = "402 Payment Required", {"declined": declined.decline_code}
        except OutcomeUnknown:
            # Sent, answer lost: never "failed". The same order again is safe (same key).
            status, body = "202 Accepted", {"pending": request.reference}
        except ProviderUnavailable:
            status, body = "503 Service Unavailable", {"retry": "later"}
            headers.append(("Retry-After", "30"))
        else:
            status, body = "200 OK", {"payment": payment.id, "status": payment.status.value}
        start_response(status, headers)
        return [json.dumps(body).encode()]

    return app


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def submit(url: str, order: str, card: str = "pm_card_visa") -> tuple[int, dict[str, Any]]:
    """The browser: POST the checkout form, return the status and the JSON body."""
    data = urllib.parse.urlencode({"order": order, "amount": "42.50", "card": card}).encode()
    try:
        # http://127.0.0.1 built above, not user input
        with urllib.request.urlopen(f"{url}/checkout", data=data,  # noqa: S310
                                    timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def charges(fake: FakeStripe, reference: str) -> int:
    return sum(1 for c in fake.ledger.charges if c.reference == reference and c.live)


def main() -> None:
    db = Path(tempfile.mkdtemp()) / "payments.db"
    with (FakeStripe(seed=1) as fake,
          SyncStripePayments(fake.api_key, base_url=fake.url, store=db) as payments):
        server = make_server("127.0.0.1", 0, checkout_app(payments),
                             server_class=ThreadingWSGIServer, handler_class=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        try:
            # 1. checkout, then a double submit of the same order
            status, body = submit(url, "order-1")
            again = submit(url, "order-1")
            print(f"1. {status} {body}; submitted again: {again[1] == body}; "
                  f"charges: {charges(fake, 'order-1')}")
            assert status == 200 and again == (status, body) and charges(fake, "order-1") == 1

            # 2. every answer lost: pending, then the same order again finishes it
            fake.faults.script("payment_intents.create", *["commit-then-reset"] * 3)
            status, body = submit(url, "order-2")
            print(f"2. {status} {body}")
            assert status == 202
            status, body = submit(url, "order-2")
            print(f"2. submitted again: {status} {body['status']}; "
                  f"charges: {charges(fake, 'order-2')}")
            assert status == 200 and charges(fake, "order-2") == 1

            # 3. a declined card, then another card for the same order
            status, body = submit(url, "order-3", card="pm_card_chargeDeclined")
            print(f"3. {status} {body}")
            assert status == 402
            status, body = submit(url, "order-3", card="pm_card_mastercard")
            print(f"3. another card: {status} {body['status']}")
            assert status == 200 and charges(fake, "order-3") == 1
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()

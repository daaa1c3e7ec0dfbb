"""Running FakeStripe: background thread, the caller's loop, the fixture, the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

import egress.testing
from egress.cli import build_parser, main
from egress.errors import ConfigurationError
from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)
from egress.testing.fake_stripe import DEFAULT_API_KEY, FakeStripe
from egress.testing.fake_stripe._cli import build

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_fixture_gives_a_running_server(fake_stripe: FakeStripe) -> None:
    assert isinstance(fake_stripe, FakeStripe)
    assert fake_stripe.url == f"http://127.0.0.1:{fake_stripe.port}"
    assert httpx.get(f"{fake_stripe.url}/_fake/health").json() == {"ok": True}
    assert repr(fake_stripe) == (f"FakeStripe({fake_stripe.url}, chaos='none', seed=0)")


def test_thread_mode_serves_sync_and_stops() -> None:
    with FakeStripe() as fake:
        url = fake.url
        assert fake._thread is not None
        assert httpx.get(f"{url}/v1/payment_intents", headers=AUTH).status_code == 200
        with pytest.raises(RuntimeError, match="already running"):
            fake.start()
    assert repr(fake).startswith("FakeStripe(stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_fake/health")


async def test_thread_mode_serves_async_clients_too() -> None:
    with FakeStripe() as fake:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{fake.url}/v1/payment_intents", headers=AUTH)
        assert response.status_code == 200


async def test_async_mode_serves_from_the_running_loop() -> None:
    async with FakeStripe() as fake:
        assert fake._thread is None
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{fake.url}/v1/payment_intents", headers=AUTH)
        assert response.status_code == 200
    assert fake._runner is None


def test_a_fixed_port_and_a_busy_port() -> None:
    port = _free_port()
    with FakeStripe(port=port) as fake:
        assert fake.port == port
        with pytest.raises(OSError, match="in use"):
            FakeStripe(port=port).start()


def test_concurrent_servers_are_independent() -> None:
    with FakeStripe() as a, FakeStripe() as b:
        httpx.post(f"{a.url}/v1/payment_intents", headers=AUTH, data={
            "amount": "1000", "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true"})
        assert len(a.ledger.charges) == 1
        assert b.ledger.charges == ()


def test_reset_forgets_everything_but_the_profile() -> None:
    with FakeStripe(chaos="flaky", seed=4) as fake:
        fake.faults.script("create", "503")
        with httpx.Client(base_url=fake.url, headers=AUTH) as api:
            for _ in range(5):
                api.post("/v1/payment_intents", headers={"Idempotency-Key": "k"}, data={
                    "amount": "1000", "currency": "usd"})
        assert fake.stats()["requests"] == 5
        fake.reset()
        assert fake.stats() == {}
        assert fake.payment_intents() == []
        assert fake.events == []
        assert [str(r) for r in fake.faults.rules] == [
            str(r) for r in fake.profile.rules]
        assert fake.faults.pending() == 0
        assert httpx.post(f"{fake.url}/_fake/reset").json() == {"ok": True}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"host": "0.0.0.0"}, "loopback"),
    ({"host": "192.168.1.1"}, "loopback"),
    ({"chaos": "chaotic"}, "chaos must be one of"),
    ({"port": 70000}, "port"),
    ({"idempotency_ttl": 0}, "idempotency_ttl"),
    ({"faults": "create: explode"}, "unknown fault"),
    ({"webhook_url": "ftp://x"}, "webhook_url"),
    ({"webhook_url": "http://127.0.0.1:1/", "webhook_duplicates": 2.0}, "webhook_duplicates"),
    ({"search_lag": -1}, "search_lag"),
])
def test_settings_are_checked_when_built(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FakeStripe(**kwargs)  # type: ignore[arg-type]


def test_the_webhook_secret_never_shows_in_reprs() -> None:
    fake = FakeStripe(webhook_url="http://127.0.0.1:1/", webhook_secret="whsec_topsecret")
    assert "topsecret" not in repr(fake)
    assert fake._core.webhooks is not None
    assert "topsecret" not in repr(fake._core.webhooks.settings)


def test_egress_testing_exports() -> None:
    assert egress.testing.FakeStripe is FakeStripe
    assert "fake_stripe_fixture" in egress.testing.__all__
    with pytest.raises(AttributeError):
        _ = egress.testing.NoSuchThing  # type: ignore[attr-defined]


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_lists_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fake-stripe", "--list-profiles"]) == 0
    out = capsys.readouterr().out
    for name in ("none", "flaky", "outage", "rate-limited", "ambiguous"):
        assert f"{name}: " in out


def test_cli_refuses_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fake-stripe", "--faults", "create: explode"]) == 2
    assert "unknown fault" in capsys.readouterr().err
    assert main(["fake-stripe", "--rate-limit", "fast"]) == 2
    with pytest.raises(SystemExit):
        main(["fake-stripe", "--chaos", "chaotic"])


def test_cli_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeStripe() as fake:
        assert main(["fake-stripe", "--port", str(fake.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_cli_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "egress.cli", "fake-stripe", "--port", "0", "--seed", "3",
         "--faults", "payment_intents.create: 503", "--rate-limit", "1000/100"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("fake Stripe listening on http://127.0.0.1:")
        url = first.split()[4]
        data = {"amount": "1000", "currency": "usd"}
        with httpx.Client(base_url=url, headers=AUTH, timeout=5.0) as api:
            assert api.post("/v1/payment_intents", data=data).status_code == 503
            assert api.post("/v1/payment_intents", data=data).status_code == 200
            assert api.get("/_fake/faults").json()["rules"] == ["payment_intents.create: 503"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped; ledger:" in out


def test_cli_builds_the_server_it_describes() -> None:
    args = build_parser().parse_args([
        "fake-stripe", "--port", "0", "--chaos", "ambiguous", "--seed", "9",
        "--idempotency-ttl", "5", "--faults", "create: 503", "--faults", "GET: 1% reset",
        "--webhook-url", "http://127.0.0.1:9/", "--search-lag", "0.5"])
    fake = build(args)
    assert fake.profile.name == "ambiguous"
    assert [r.route for r in fake.faults.rules] == ["POST", "create", "GET"]
    assert fake._core.idempotency.ttl == 5.0
    assert fake.webhook_url == "http://127.0.0.1:9/"
    assert fake.seed == 9

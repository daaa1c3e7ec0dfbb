"""What importing egress loads, and what building a client does before its first call.

Each entry point is imported in a fresh interpreter (the only way to see what an import loads):
import cost is a contract (issue 15 §4), so these pin its causes, which do not depend on the
machine's speed: the libraries loaded, the code compiled at import, the trust store read. The
times themselves are measured by ``bench/imports.py``, never here.
"""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import subprocess
import sys
from typing import Any

import pytest

import egress.events
from egress.http import ApiClient, SyncApiClient, _tls

# Libraries that only a wire, a sink or the CLI needs: none may load with an import alone.
_HEAVY = {"aiohttp", "httpx", "httpcore", "anyio", "yarl", "multidict", "rich", "certifi",
          "opentelemetry", "prometheus_client", "redis", "importlib.metadata"}


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _modules_after(statement: str) -> set[str]:
    return set(_run(f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))").split())


@pytest.mark.parametrize(("statement", "also_absent"), [
    ("import egress", {"asyncio", "typing", "egress.events", "egress.policies"}),
    ("from egress import Pipeline, Retry, Timeout, CircuitBreaker",
     {"egress.http", "egress.payments", "egress.observability.status", "egress.policies.ratelimit",
      "egress.policies.bulkhead"}),
    ("import egress.http", {"asyncio", "egress.events", "egress.payments", "egress.http._httpx"}),
    ("from egress.http import ApiClient, SyncApiClient", {"egress.http._aiohttp"}),
    ("import egress.payments", {"asyncio", "egress.events", "egress.http", "egress.adapters"}),
    ("from egress.payments import Money, PaymentRequest", {"egress.payments.keeper"}),
    ("import egress.adapters.stripe", {"egress.http._aiohttp", "egress.http._stdlib"}),
])
def test_an_import_loads_no_http_library_and_nothing_unused(statement: str,
                                                            also_absent: set[str]) -> None:
    loaded = _modules_after(statement)
    assert not (_HEAVY | also_absent) & loaded, sorted((_HEAVY | also_absent) & loaded)


def test_egress_runs_without_the_httpx_extra() -> None:
    # `pip install egress` brings aiohttp, not httpx (nor anyio, which comes with httpx).
    out = _run("""
import sys
for name in ("httpx", "httpcore", "anyio"):
    sys.modules[name] = None  # as if not installed: importing it raises ImportError
import asyncio
from egress import Backoff, Pipeline, Retry, attempts
from egress.http import ApiClient, SyncApiClient
import egress.payments, egress.adapters.stripe, egress.testing

calls = []
async def flaky():
    calls.append(1)
    if len(calls) == 1:
        raise ConnectionError("first attempt fails")
    return "ok"

async def main():
    # the real clock sleeps between the attempts
    retry = Retry(on=ConnectionError, stop=attempts(2), backoff=Backoff(initial=0.001, cap=0.001))
    print(await Pipeline(retry).run(flaky), len(calls))
    client = ApiClient("http://127.0.0.1:9")
    await client.aclose()
asyncio.run(main())
SyncApiClient("http://127.0.0.1:9").close()
""")
    assert out.split() == ["ok", "2"]


def test_defining_the_events_compiles_no_per_class_methods() -> None:
    # A frozen dataclass compiles six methods when it is defined (about 0.15 ms each): for the
    # ~25 events, most of what importing egress cost. The events compile none: their __init__
    # is written the first time one is built, the rest is Event's, shared.
    out = _run("""
import sys, dataclasses, logging, threading, typing  # what events.py imports: not counted
import egress.errors
compiled = []
sys.addaudithook(lambda event, args: compiled.append(1)
                 if event == "compile" and args[1] == "<string>" else None)
import egress.events
print(len(compiled))
""")
    builders = 4  # the per-call builders (call_started, ...), made at import on purpose
    frozen_marker = 2  # one frozen dataclass, whose parameters every event borrows
    assert int(out) <= builders + frozen_marker


def test_clients_read_the_trust_store_once_and_only_when_a_connection_needs_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []
    real = _tls._verifying_context

    def counting(*args: object) -> object:
        loads.append(args)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_tls, "_verifying_context", counting)
    if hasattr(_tls, "_shared_default"):  # (absent before the fix: then every client loaded)
        _tls._shared_default.cache_clear()
    async_clients = [ApiClient("http://127.0.0.1:9"), ApiClient("https://api.example.com")]
    sync_clients = [SyncApiClient("https://api.example.com"), SyncApiClient("http://127.0.0.1:9")]
    assert loads == []  # building a client reads no certificates
    cores = [c._core for c in async_clients] + [c._core for c in sync_clients]
    contexts = {id(core.wire_options.ssl_context) for core in cores}
    assert len(loads) == 1 and len(contexts) == 1  # one load, shared by every client
    for client in sync_clients:
        client.close()


def test_a_bad_ca_file_still_fails_at_construction() -> None:
    with pytest.raises(egress.ConfigurationError, match="CA file"):
        SyncApiClient("https://api.example.com", verify="/no/such/ca.pem")


@pytest.mark.parametrize("cls", [c for c in vars(egress.events).values()
                                 if isinstance(c, type) and issubclass(c, egress.events.Event)],
                         ids=lambda c: c.__name__)
def test_every_event_keeps_the_shape_of_a_frozen_slotted_dataclass(
        cls: type[egress.events.Event]) -> None:
    fields = dataclasses.fields(cls)
    given: dict[str, Any] = {f.name: f"v-{f.name}" for f in fields}
    event = cls(**given)
    assert dataclasses.asdict(event) == given
    assert repr(event) == f"{cls.__qualname__}({', '.join(f'{k}={v!r}' for k, v in given.items())})"
    assert event == cls(**given) and hash(event) == hash(cls(**given)) and event != object()
    assert event != dataclasses.replace(event, operation="other")
    assert pickle.loads(pickle.dumps(event)) == event
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.operation = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__") and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    signature = inspect.signature(cls)
    assert [p.name for p in signature.parameters.values()] == [f.name for f in fields]
    assert all(p.kind is p.KEYWORD_ONLY for p in signature.parameters.values())
    with pytest.raises(TypeError):  # a required field left out
        cls(**{k: v for k, v in given.items() if k != "operation"})
    with pytest.raises(TypeError):
        cls(**given, unknown=1)  # type: ignore[call-arg]



@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Mine(egress.events.RetryScheduled):
    extra: int = 0


class _Plain(egress.events.AttemptSucceeded):
    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.note = "own attribute"  # not a field: a plain subclass may set it


def test_an_event_can_still_be_extended_as_a_frozen_dataclass_or_a_plain_class() -> None:
    mine = _Mine(operation="o", at=1.0, attempt=1, delay=0.5, error="E", extra=2)
    assert repr(mine).startswith("_Mine(operation='o'") and mine.extra == 2
    assert pickle.loads(pickle.dumps(mine)) == mine
    with pytest.raises(dataclasses.FrozenInstanceError):
        mine.extra = 3  # type: ignore[misc]
    plain = _Plain(operation="o", at=1.0, attempt=1, duration=0.1)
    assert plain.note == "own attribute" and plain.status is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.operation = "other"  # type: ignore[misc]

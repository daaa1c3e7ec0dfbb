"""HTTP clients against a local nginx: requests/s, p50 and p99. Prints a table.

    uv run python bench/http_client.py [--count 48000] [--rounds 3] [--max-seconds 45]
                                       [--no-pin] [--blocks 3] [--only CASE ...]

Starts its own nginx (Debian: ``apt-get install -y nginx-light``) on a free 127.0.0.1 port with a
temporary config (one worker, keep-alive, a fixed 11-byte JSON answer), and stops it at the end.
Every case makes ``count`` GETs, in ``rounds`` rounds; within a round the cases take turns in
slices of ``max(100, 10 × concurrency)`` calls (rotating who goes first), so that a machine whose
speed drifts from one second to the next gives every case the same moments, and every round
starts with a full garbage collection. nginx and the client are pinned to different CPUs
(``--no-pin`` to leave it to the scheduler, which on a 2-core machine sometimes stacks both on
one core). A case that would run past ``max-seconds`` stops early and reports what it did (the
table says so). Async cases run at concurrency 1 and 64; sync cases at 1.

Cases: raw httpx (pooled AsyncClient), raw aiohttp (one session), raw aiohttp again in a second
session (the control: its ratio to the first is the bench's own noise), raw pyreqwest (one
Client), httpx + tenacity + aiobreaker (what people assemble today), httpx-retries, egress
ApiClient with its default pipeline on each backend (aiohttp, httpx, pyreqwest); sync: raw
httpx.Client, urllib3, SyncApiClient (default backend, and httpx). The ``+ uvloop`` rows run the
same calls on uvloop's event loop: the async rounds are split into ``blocks``, each run once on
asyncio's loop and once on uvloop's (alternating which goes first), so the two loops are
interleaved too (a uvloop row's round is compared with the asyncio round of the same block).
The last column is the spread: each round's rate over the reference's rate in the same round
(median, min-max); the control row shows how far that spread goes for a client that is neither
faster nor slower. That spread shrinks with the size of a round: with the defaults (three rounds
of 16,000 calls per case, 25 slices each at concurrency 64) the control stayed within ±5 % on a
quiet machine; twelve rounds of 4,000 let it reach 0.90, which no client can be judged against.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiobreaker
import aiohttp
import httpx
import tenacity
import urllib3
import uvloop
from httpx_retries import Retry as HttpxRetry
from httpx_retries import RetryTransport
from pyreqwest.client import ClientBuilder

from egress.http import ApiClient, SyncApiClient

NGINX_CONF = """
worker_processes 1;
{affinity}
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {{
    listen 127.0.0.1:{port};
    {locations}
    location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin() -> tuple[str, str]:
    """Put nginx on one CPU and this process on the others (Linux), so that the scheduler does
    not sometimes run both on one core: that alone swings results by 2x on a small machine."""
    if not hasattr(os, "sched_setaffinity"):
        return "", "not pinned (no sched_setaffinity)"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "", "not pinned (one CPU)"
    server = cpus[-1]
    os.sched_setaffinity(0, set(cpus[:-1]))
    mask = format(1 << server, "b")
    return f"worker_cpu_affinity {mask};", f"nginx on CPU {server}, client on CPUs {cpus[:-1]}"


@contextlib.contextmanager
def nginx(affinity: str = "", locations: str = "") -> Iterator[str]:
    """nginx on a free loopback port; ``locations``: extra ``location`` blocks."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        sys.exit("nginx not found: apt-get install -y nginx-light")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="egress-bench-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port, affinity=affinity,
                                            locations=locations))
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", tmp],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(100):
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", port), timeout=0.1):
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("nginx did not start")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    truncated: bool = False
    round_rates: list[float] = field(default_factory=list)  # requests/s of each round

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


AsyncCall = Callable[[], Awaitable[Any]]


async def timed_async(call: AsyncCall, n: int, concurrency: int,
                      latencies: list[float]) -> tuple[int, float]:
    """``n`` calls (rounded down to a multiple of ``concurrency``, at least one per worker) by
    ``concurrency`` workers: how many were made and how long they took, in seconds."""
    per_worker = max(1, n // concurrency)
    clock = time.perf_counter

    async def worker() -> None:
        for _ in range(per_worker):
            started = clock()
            await call()
            latencies.append(clock() - started)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency, clock() - started


async def run_async(call: AsyncCall, n: int, concurrency: int, result: Result) -> None:
    """One round of ``n`` calls of one case, added into ``result``."""
    done, took = await timed_async(call, n, concurrency, result.latencies)
    result.elapsed += took
    result.round_rates.append(done / took)


def slicing(per_round: int, concurrency: int) -> tuple[int, int]:
    """``(slices, per_slice)``: a round of ``per_round`` calls per case, cut into slices of
    ``max(100, 10 × concurrency)`` calls (the cases take turns slice by slice)."""
    per_slice = min(per_round, max(100, 10 * concurrency))
    return max(1, per_round // per_slice), per_slice


async def round_async(cases: dict[str, AsyncCall], results: dict[str, Result], per_round: int,
                      concurrency: int, max_elapsed: float) -> None:
    """One round of every case in ``cases``, the cases taking turns in short slices.

    This machine's speed drifts by ±20 % over a second or two (another tenant, frequency, how
    the loopback traffic happens to batch): a round run as one block per case compares each
    case with a different moment of the machine, and two runs of the very same client differ
    by ±30 % round by round. Taking turns every few tens of milliseconds (rotating who goes
    first) gives every case the same moments; a full collection before the round starts every
    round from the same garbage-collector state. A case that has run ``max_elapsed`` seconds
    already sits the round out (marked truncated).
    """
    gc.collect()
    names = unspent(results, cases, max_elapsed)
    slices, per_slice = slicing(per_round, concurrency)
    done = dict.fromkeys(names, 0)
    took = dict.fromkeys(names, 0.0)
    for index in range(slices):
        turn = index % len(names) if names else 0
        for name in names[turn:] + names[:turn]:
            made, seconds = await timed_async(cases[name], per_slice, concurrency,
                                              results[name].latencies)
            done[name] += made
            took[name] += seconds
    for name in names:
        results[name].elapsed += took[name]
        results[name].round_rates.append(done[name] / took[name])


def unspent(results: dict[str, Result], cases: Iterable[str], max_elapsed: float) -> list[str]:
    """The cases whose time bound is not spent; the others are marked truncated."""
    names = []
    for name in cases:
        if results[name].elapsed > max_elapsed:
            results[name].truncated = True
        else:
            names.append(name)
    return names


def run_sync(call: Callable[[], Any], n: int, latencies: list[float]) -> tuple[int, float]:
    """``n`` calls in a row: how many and how long they took, in seconds."""
    clock = time.perf_counter
    started = clock()
    for _ in range(n):
        begin = clock()
        call()
        latencies.append(clock() - begin)
    return n, clock() - started


async def async_cases(url: str, stack: contextlib.AsyncExitStack) -> dict[str, AsyncCall]:
    target = url + "/x"
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    raw_httpx = await stack.enter_async_context(httpx.AsyncClient(limits=limits))
    session = await stack.enter_async_context(aiohttp.ClientSession())
    again = await stack.enter_async_context(aiohttp.ClientSession())
    assembled = await stack.enter_async_context(httpx.AsyncClient(limits=limits))
    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=60))
    retries = await stack.enter_async_context(httpx.AsyncClient(
        limits=limits,
        transport=RetryTransport(retry=HttpxRetry(total=3, backoff_factor=0.1))))
    egress_aiohttp = await stack.enter_async_context(ApiClient(url, backend="aiohttp"))
    egress_httpx = await stack.enter_async_context(ApiClient(url, backend="httpx"))
    reqwest = await stack.enter_async_context(ClientBuilder().max_connections(100).build())
    egress_pyreqwest = await stack.enter_async_context(ApiClient(url, backend="pyreqwest"))

    async def httpx_raw() -> bytes:
        return (await raw_httpx.get(target)).content

    async def aiohttp_raw() -> bytes:
        async with session.get(target) as response:
            return await response.read()

    async def aiohttp_raw_again() -> bytes:  # the control: the same client, a second session
        async with again.get(target) as response:
            return await response.read()

    async def fetch() -> bytes:
        response = await assembled.get(target)
        response.raise_for_status()
        return response.content

    @tenacity.retry(stop=tenacity.stop_after_attempt(3),
                    wait=tenacity.wait_random_exponential(multiplier=0.1, max=10),
                    retry=tenacity.retry_if_exception_type(httpx.TransportError), reraise=True)
    async def httpx_tenacity_aiobreaker() -> bytes:
        return await breaker.call_async(fetch)  # type: ignore[no-any-return]

    async def httpx_retries() -> bytes:
        return (await retries.get(target)).content

    async def egress_default_aiohttp() -> bytes:
        return (await egress_aiohttp.get("/x")).content

    async def egress_default_httpx() -> bytes:
        return (await egress_httpx.get("/x")).content

    async def pyreqwest_raw() -> bytes:
        return bytes(await (await reqwest.get(target).build().send()).bytes())

    async def egress_default_pyreqwest() -> bytes:
        return (await egress_pyreqwest.get("/x")).content

    return {
        "raw httpx AsyncClient": httpx_raw,
        "raw aiohttp session": aiohttp_raw,
        CONTROL: aiohttp_raw_again,
        "raw pyreqwest Client": pyreqwest_raw,
        "httpx + tenacity + aiobreaker": httpx_tenacity_aiobreaker,
        "httpx-retries": httpx_retries,
        "egress ApiClient (aiohttp, default)": egress_default_aiohttp,
        "egress ApiClient (httpx)": egress_default_httpx,
        "egress ApiClient (pyreqwest)": egress_default_pyreqwest,
    }


#: Raw aiohttp again, in a second session: its ratio to raw aiohttp is the bench's own noise, the
#: spread that any other row's ratio can show without being faster or slower.
CONTROL = "raw aiohttp session, again (control)"

#: The cases also run on uvloop (as "<name> + uvloop").
UVLOOP_CASES = ("raw aiohttp session", "egress ApiClient (aiohttp, default)",
                "egress ApiClient (pyreqwest)")


def sync_cases(url: str, stack: contextlib.ExitStack) -> dict[str, Callable[[], Any]]:
    target = url + "/x"
    client = stack.enter_context(httpx.Client())
    host, port = url.removeprefix("http://").split(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=4)
    stack.callback(pool.close)
    egress_stdlib = stack.enter_context(SyncApiClient(url))
    egress_httpx = stack.enter_context(SyncApiClient(url, backend="httpx"))
    return {
        "raw httpx.Client": lambda: client.get(target).content,
        "urllib3 pool": lambda: pool.request("GET", "/x").data,
        "egress SyncApiClient (stdlib, default)": lambda: egress_stdlib.get("/x").content,
        "egress SyncApiClient (httpx)": lambda: egress_httpx.get("/x").content,
    }


async def bench_async(url: str, per_round: int, rounds: int, total_rounds: int,
                      max_seconds: float, concurrency: int, results: dict[str, Result],
                      suffix: str = "", only: tuple[str, ...] | None = None) -> None:
    """``rounds`` interleaved rounds of every case (or of ``only``), added into ``results``."""
    async with contextlib.AsyncExitStack() as stack:
        cases = {name + suffix: call for name, call in (await async_cases(url, stack)).items()
                 if only is None or name in only}
        for name in cases:
            results.setdefault(name, Result(name, concurrency))
        for call in cases.values():  # warm every pool up
            await run_async(call, 200, min(concurrency, 64), Result("warmup", concurrency))
        for _ in range(rounds):
            await round_async(cases, results, per_round, concurrency,
                              max_seconds * (1 - 1 / total_rounds))


def interleaved_async(url: str, count: int, rounds: int, blocks: int, max_seconds: float,
                      concurrency: int, only: tuple[str, ...] | None = None) -> list[Result]:
    """The async rounds in ``blocks``: each block on asyncio's loop and on uvloop's."""
    results: dict[str, Result] = {}
    per_round, blocks = count // rounds, max(1, min(blocks, rounds))
    on_uvloop = UVLOOP_CASES if only is None else tuple(c for c in UVLOOP_CASES if c in only)
    for block in range(blocks):
        # ``rounds`` spread over the blocks: every round is run, none twice.
        in_block = rounds // blocks + (1 if block < rounds % blocks else 0)
        on_asyncio = bench_async(url, per_round, in_block, rounds, max_seconds, concurrency,
                                 results, only=only)
        on_uv = bench_async(url, per_round, in_block, rounds, max_seconds, concurrency, results,
                            " + uvloop", on_uvloop)
        runs: list[tuple[Callable[[Any], Any], Any]] = [(asyncio.run, on_asyncio),
                                                         (uvloop.run, on_uv)]
        for run, coroutine in runs if block % 2 == 0 else runs[::-1]:
            run(coroutine)
    return list(results.values())


def bench_sync(url: str, count: int, rounds: int, max_seconds: float) -> list[Result]:
    with contextlib.ExitStack() as stack:
        cases = sync_cases(url, stack)
        results = {name: Result(name, 1) for name in cases}
        for call in cases.values():
            run_sync(call, 200, [])
        per_round = count // rounds
        slices, per_slice = slicing(per_round, 1)
        for _ in range(rounds):  # the cases take turns in slices, as in round_async
            gc.collect()
            names = unspent(results, cases, max_seconds * (1 - 1 / rounds))
            done = dict.fromkeys(names, 0)
            took = dict.fromkeys(names, 0.0)
            for index in range(slices):
                turn = index % len(names) if names else 0
                for name in names[turn:] + names[:turn]:
                    made, seconds = run_sync(cases[name], per_slice, results[name].latencies)
                    done[name] += made
                    took[name] += seconds
            for name in names:
                results[name].elapsed += took[name]
                results[name].round_rates.append(done[name] / took[name])
        return list(results.values())


def spread(result: Result, reference: Result | None) -> str:
    """Median and range of the per-round ratios to the reference (its round run just before or
    after, in the same interleaving)."""
    if reference is None or not result.round_rates:
        return ""
    ratios = sorted(mine / theirs for mine, theirs in zip(result.round_rates,
                                                           reference.round_rates, strict=False))
    if not ratios:
        return ""
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def table(title: str, results: list[Result], reference: str) -> str:
    ref = next((r for r in results if r.name == reference), None)
    base = (ref.rate if ref is not None else 0.0) or 1.0
    lines = [f"\n{title}", "",
             f"| {'client':46s} | {'conc':>4s} | {'requests':>8s} | {'req/s':>8s} | "
             f"{'p50 ms':>7s} | {'p99 ms':>7s} | {'vs ' + reference:>28s} | "
             f"{'per round: median (min-max)':>27s} |",
             f"|{'-' * 48}|{'-' * 6}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 30}|"
             f"{'-' * 29}|"]
    for r in results:
        note = "*" if r.truncated else ""
        lines.append(f"| {r.name:46s} | {r.concurrency:4d} | {r.count:>7d}{note:1s} | "
                     f"{r.rate:8.0f} | {r.percentile(0.5):7.3f} | {r.percentile(0.99):7.3f} | "
                     f"{r.rate / base:27.2f}x | {spread(r, ref):>27s} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=48_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=45.0,
                        help="time bound per case and concurrency (stops early, marked *)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    parser.add_argument("--blocks", type=int, default=3,
                        help="async rounds are split into this many asyncio/uvloop blocks")
    parser.add_argument("--only", nargs="+", metavar="CASE",
                        help="only these async cases (names as in the table); no sync cases")
    args = parser.parse_args()
    only = tuple(args.only) if args.only else None
    affinity, pinning = ("", "not pinned") if args.no_pin else pin()
    import sniffio  # noqa: F401  (httpx is much slower without it; make sure it is there)

    with nginx(affinity) as url:
        print(f"nginx on {url} ({pinning}); {args.count} GETs per case in {args.rounds} "
              f"interleaved rounds; "
              f"python {sys.version.split()[0]}, httpx {httpx.__version__}, "
              f"aiohttp {aiohttp.__version__}, urllib3 {urllib3.__version__}, "
              f"uvloop {version('uvloop')}, pyreqwest {version('pyreqwest')}; "
              f"load average {os.getloadavg()}")
        for concurrency in (1, 64):
            results = interleaved_async(url, args.count, args.rounds, args.blocks,
                                        args.max_seconds, concurrency, only)
            print(table(f"Async, concurrency {concurrency}", results, "raw aiohttp session"))
        if only is not None:
            return
        results = bench_sync(url, args.count, args.rounds, args.max_seconds)
        fastest = max((r for r in results if not r.name.startswith("egress")),
                      key=lambda r: r.rate)
        print(table("Sync, concurrency 1", results, fastest.name))
        print(f"\n* stopped early by --max-seconds; load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()

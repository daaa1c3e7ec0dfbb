"""Fault injection: what can go wrong, on which route, and when (pure decisions).

A :class:`Fault` is one misbehaviour (a 503, a reset, a commit-then-reset, ...). A
:class:`FaultRule` attaches faults to routes, either **scripted** (consumed one per matching
request, in order, then the route behaves) or as a **mix** of shares drawn from a seeded random
source for every matching request. A :class:`FaultPlan` holds the rules and answers, for each
request, "which fault, if any?". The HTTP layer (:mod:`._app`) acts the answer out.

The same rules can be written as text, for the CLI and the control endpoint::

    payment_intents.create: 500, 500, 429 retry-after=2       # scripted, then normal
    *: 5% 503, 2% reset, 1% latency seconds=0.2             # probabilistic
    POST @0.5-3: 100% 503                                   # every POST, from 0.5 s to 3 s

Rules are separated by ``;`` or new lines. Route patterns are shell-style patterns over route
names (``payment_intents.confirm``, ``refunds.create``, ...; a bare ``confirm`` means
``payment_intents.confirm``) or a method, ``GET`` / ``POST``. ``@A-B`` limits a rule's mix to the
window from A to B seconds after the first API request the plan saw (B may be left out).
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum

from egress.errors import ConfigurationError

__all__ = [
    "CHAOS_PROFILES",
    "ChaosProfile",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "RateLimit",
    "ROUTES",
    "parse_fault",
    "parse_rules",
]

ROUTES = (
    "payment_intents.create", "payment_intents.retrieve", "payment_intents.update",
    "payment_intents.confirm", "payment_intents.capture", "payment_intents.cancel",
    "payment_intents.list", "payment_intents.search", "refunds.create", "refunds.list",
    "refunds.retrieve",
)

DEFAULT_LATENCY = 0.1
DEFAULT_DRIP_INTERVAL = 0.05
DEFAULT_DRIP_CHUNKS = 10
DEFAULT_BLACK_HOLE_HOLD = 3600.0


class FaultKind(Enum):
    """Every misbehaviour the fake can act out. The value is its name in fault specs."""

    OK = "ok"
    LATENCY = "latency"
    STATUS = "status"
    STORED_500 = "stored-500"
    RATE_LIMITED = "429"
    LOCK_TIMEOUT = "lock-timeout"
    KEY_IN_USE = "key-in-use"
    RESET = "reset"
    IDLE_CLOSE = "idle-close"
    BLACK_HOLE = "black-hole"
    COMMIT_THEN_RESET = "commit-then-reset"
    COMMIT_THEN_500 = "commit-then-500"
    SLOW_DRIP = "slow-drip"
    TRUNCATE = "truncate"
    MALFORMED_JSON = "malformed-json"

    @property
    def commits(self) -> bool:
        """Whether the operation runs (and its effects stay) before the fault is acted out."""
        return self in _COMMITTING


_COMMITTING = frozenset({FaultKind.LATENCY, FaultKind.COMMIT_THEN_RESET,
                         FaultKind.COMMIT_THEN_500, FaultKind.SLOW_DRIP, FaultKind.TRUNCATE,
                         FaultKind.MALFORMED_JSON})


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One misbehaviour. Build it with the class methods; each documents what the client sees."""

    kind: FaultKind
    status: int = 0
    seconds: float = 0.0
    chunks: int = 0
    retry_after: float | None = None
    retry_after_form: str = "seconds"
    retry_after_raw: str | None = None
    should_retry: bool | None = None
    commit: bool = False

    def __post_init__(self) -> None:
        if self.kind is FaultKind.STATUS and not 400 <= self.status <= 599:
            raise ConfigurationError(f"Fault status must be 400..599, got {self.status}")
        if self.seconds < 0:
            raise ConfigurationError("Fault seconds must be >= 0")
        if self.retry_after is not None and self.retry_after < 0:
            raise ConfigurationError("Fault retry_after must be >= 0")
        if self.retry_after_form not in ("seconds", "http-date"):
            raise ConfigurationError("Fault retry_after_form must be 'seconds' or 'http-date'")
        if self.kind is FaultKind.SLOW_DRIP and self.chunks < 1:
            raise ConfigurationError("Fault chunks must be >= 1 for slow-drip")
        if self.retry_after is None:  # the form means nothing without a value
            object.__setattr__(self, "retry_after_form", "seconds")

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def ok(cls) -> Fault:
        """No fault: in a script, lets one request through untouched."""
        return cls(kind=FaultKind.OK)

    @classmethod
    def latency(cls, seconds: float = DEFAULT_LATENCY) -> Fault:
        """Wait ``seconds`` inside the endpoint, then answer normally (effects are kept even if
        the client gave up meanwhile; a same-key request meanwhile gets 409)."""
        return cls(kind=FaultKind.LATENCY, seconds=seconds)

    @classmethod
    def http_status(cls, status: int, *, should_retry: bool | None = None,
                    retry_after: float | None = None, retry_after_form: str = "seconds",
                    retry_after_raw: str | None = None) -> Fault:
        """Answer ``status`` before the idempotency layer (like a load balancer): nothing runs,
        nothing is saved, a retry with the same key runs normally."""
        return cls(kind=FaultKind.STATUS, status=status, should_retry=should_retry,
                   retry_after=retry_after, retry_after_form=retry_after_form,
                   retry_after_raw=retry_after_raw)

    @classmethod
    def stored_500(cls) -> Fault:
        """The endpoint fails before changing anything; the 500 is saved and replayed to every
        retry with the same key (``Stripe-Should-Retry: false``), as Stripe does."""
        return cls(kind=FaultKind.STORED_500, status=500, should_retry=False)

    @classmethod
    def rate_limited(cls, *, retry_after: float | None = None,
                     retry_after_form: str = "seconds", retry_after_raw: str | None = None,
                     should_retry: bool | None = None) -> Fault:
        """429 ``rate_limit``, decided before the idempotency layer. ``Retry-After`` is sent as
        delta-seconds or as an HTTP-date (``retry_after_form``), or verbatim (``retry_after_raw``,
        e.g. a malformed value)."""
        return cls(kind=FaultKind.RATE_LIMITED, status=429, retry_after=retry_after,
                   retry_after_form=retry_after_form, retry_after_raw=retry_after_raw,
                   should_retry=should_retry)

    @classmethod
    def lock_timeout(cls, *, status: int = 429) -> Fault:
        """``lock_timeout`` (429 at Stripe; ``status=409`` for the variant some docs describe),
        with ``Stripe-Should-Retry: true``; nothing ran."""
        return cls(kind=FaultKind.LOCK_TIMEOUT, status=status, should_retry=True)

    @classmethod
    def key_in_use(cls) -> Fault:
        """409 ``idempotency_key_in_use``, as if a request with the same key were running."""
        return cls(kind=FaultKind.KEY_IN_USE, status=409)

    @classmethod
    def reset(cls) -> Fault:
        """Read the request, then reset the connection (TCP RST); nothing ran."""
        return cls(kind=FaultKind.RESET)

    @classmethod
    def idle_close(cls) -> Fault:
        """Close the connection (FIN) without answering, as a server does to a keep-alive
        connection it considers idle just as the client reuses it; nothing ran."""
        return cls(kind=FaultKind.IDLE_CLOSE)

    @classmethod
    def black_hole(cls, *, commit: bool = False,
                   seconds: float = DEFAULT_BLACK_HOLE_HOLD) -> Fault:
        """Accept the request and never answer (the connection stays open until the client
        gives up or ``seconds`` pass). With ``commit=True`` the operation runs first."""
        return cls(kind=FaultKind.BLACK_HOLE, commit=commit, seconds=seconds)

    @classmethod
    def commit_then_reset(cls) -> Fault:
        """Run the operation (the charge is recorded and its answer saved for the key), then
        reset the connection before answering."""
        return cls(kind=FaultKind.COMMIT_THEN_RESET)

    @classmethod
    def commit_then_500(cls) -> Fault:
        """Run the operation, then answer 500; the 500 is what the key replays."""
        return cls(kind=FaultKind.COMMIT_THEN_500, status=500, should_retry=False)

    @classmethod
    def slow_drip(cls, *, seconds: float = DEFAULT_DRIP_INTERVAL,
                  chunks: int = DEFAULT_DRIP_CHUNKS) -> Fault:
        """Run the operation, send the headers at once, then the body in ``chunks`` pieces
        ``seconds`` apart."""
        return cls(kind=FaultKind.SLOW_DRIP, seconds=seconds, chunks=chunks)

    @classmethod
    def truncate(cls) -> Fault:
        """Run the operation, announce the full ``Content-Length``, send half, close."""
        return cls(kind=FaultKind.TRUNCATE)

    @classmethod
    def malformed_json(cls) -> Fault:
        """Run the operation, answer its status with a body that is not valid JSON."""
        return cls(kind=FaultKind.MALFORMED_JSON)

    # -- text form ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        if self.kind is FaultKind.STATUS:
            return str(self.status)
        return str(self.kind.value)

    def __str__(self) -> str:
        parts = [self.name]
        if self.kind in (FaultKind.LATENCY, FaultKind.SLOW_DRIP) or (
                self.kind is FaultKind.BLACK_HOLE and self.seconds != DEFAULT_BLACK_HOLE_HOLD):
            parts.append(f"seconds={self.seconds:g}")
        if self.kind is FaultKind.SLOW_DRIP:
            parts.append(f"chunks={self.chunks}")
        if self.kind is FaultKind.BLACK_HOLE and self.commit:
            parts.append("commit=true")
        if self.kind is FaultKind.LOCK_TIMEOUT and self.status != 429:
            parts.append(f"status={self.status}")
        if self.retry_after is not None:
            key = "retry-after" if self.retry_after_form == "seconds" else "retry-after-date"
            parts.append(f"{key}={self.retry_after:g}")
        if self.retry_after_raw is not None:
            parts.append(f"retry-after-raw={self.retry_after_raw}")
        if self.should_retry != _DEFAULT_SHOULD_RETRY.get(self.kind):
            flag = {None: "none", True: "true", False: "false"}[self.should_retry]
            parts.append(f"should-retry={flag}")
        return " ".join(parts)


_DEFAULT_SHOULD_RETRY = {FaultKind.STORED_500: False, FaultKind.COMMIT_THEN_500: False,
                         FaultKind.LOCK_TIMEOUT: True}


def _flag(value: str, key: str) -> bool:
    if value not in ("true", "false"):
        raise ConfigurationError(f"fault option {key} must be true or false, got {value!r}")
    return value == "true"


def _number(value: str, key: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):  # inf would overflow int() (chunks, status): not a bare error
        raise ConfigurationError(f"fault option {key} must be a number, got {value!r}")
    return number


_NAMED: dict[str, Callable[[], Fault]] = {
    "ok": Fault.ok, "latency": Fault.latency, "stored-500": Fault.stored_500,
    "lock-timeout": Fault.lock_timeout, "key-in-use": Fault.key_in_use, "reset": Fault.reset,
    "idle-close": Fault.idle_close, "black-hole": Fault.black_hole,
    "commit-then-reset": Fault.commit_then_reset, "commit-then-500": Fault.commit_then_500,
    "slow-drip": Fault.slow_drip, "truncate": Fault.truncate,
    "malformed-json": Fault.malformed_json, "rate-limited": Fault.rate_limited,
    "409": Fault.key_in_use, "429": Fault.rate_limited,
}


def parse_fault(text: str) -> Fault:
    """One fault from its text form, e.g. ``429 retry-after-date=2`` or ``latency seconds=0.3``."""
    words = text.split()
    if not words:
        raise ConfigurationError("empty fault")
    head, options = words[0].lower(), words[1:]
    if head in _NAMED:
        fault = _NAMED[head]()
    elif head.isdigit() and len(head) == 3:
        fault = Fault.http_status(int(head))
    else:
        known = ", ".join(sorted(k for k in _NAMED if not k.isdigit()))
        raise ConfigurationError(f"unknown fault {head!r}; known: <status code>, {known}")
    changes: dict[str, object] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise ConfigurationError(f"fault option {option!r} must be key=value")
        if key == "seconds":
            changes["seconds"] = _number(value, key)
        elif key == "chunks":
            changes["chunks"] = int(_number(value, key))
        elif key == "status":
            changes["status"] = int(_number(value, key))
        elif key == "retry-after":
            changes["retry_after"] = _number(value, key)
            changes["retry_after_form"] = "seconds"
        elif key == "retry-after-date":
            changes["retry_after"] = _number(value, key)
            changes["retry_after_form"] = "http-date"
        elif key == "retry-after-raw":
            changes["retry_after_raw"] = value
        elif key == "should-retry":
            changes["should_retry"] = None if value == "none" else _flag(value, key)
        elif key == "commit":
            changes["commit"] = _flag(value, key)
        else:
            raise ConfigurationError(f"unknown fault option {key!r} in {text!r}")
    return replace(fault, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRule:
    """Faults for the routes matching ``route``: a script first, then a mix of shares."""

    route: str = "*"
    script: tuple[Fault, ...] = ()
    mix: tuple[tuple[float, Fault], ...] = ()
    after: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        total = 0.0
        for share, _fault in self.mix:
            if not 0.0 <= share <= 1.0:
                raise ConfigurationError(f"fault share must be within 0..1, got {share}")
            total += share
        if total > 1.0 + 1e-9:
            raise ConfigurationError(f"fault shares for {self.route!r} add up to {total:g} > 1")
        if not self.route:
            raise ConfigurationError("fault route pattern must not be empty")

    def matches(self, route: str, method: str) -> bool:
        pattern = self.route
        if pattern in ("GET", "POST"):
            return method == pattern
        return (fnmatch.fnmatchcase(route, pattern)
                or fnmatch.fnmatchcase(route, "payment_intents." + pattern))

    def active(self, elapsed: float) -> bool:
        return ((self.after is None or elapsed >= self.after)
                and (self.until is None or elapsed < self.until))

    def __str__(self) -> str:
        window = ""
        if self.after is not None or self.until is not None:
            window = f"@{self.after or 0:g}-{'' if self.until is None else f'{self.until:g}'}"
        items = [str(f) for f in self.script]
        items += [f"{share * 100:g}% {fault}" for share, fault in self.mix]
        return f"{self.route}{window}: {', '.join(items)}"


_RULE_HEAD = re.compile(r"^\s*([A-Za-z_.*?\[\]]+)(?:@([\d.]+)-([\d.]*))?\s*:")
_REPEAT = re.compile(r"^(.*?)\s+x(\d+)$")


def parse_rules(text: str) -> tuple[FaultRule, ...]:
    """Rules from their text form (see the module docstring)."""
    rules: list[FaultRule] = []
    for line in re.split(r"[;\n]", text):
        chunk = line.split("#", 1)[0].strip()
        if not chunk:
            continue
        route, after, until = "*", None, None
        head = _RULE_HEAD.match(chunk)
        if head:
            route = head.group(1)
            if head.group(2):
                after = _number(head.group(2), "window start")
                until = _number(head.group(3), "window end") if head.group(3) else None
            chunk = chunk[head.end():]
        script: list[Fault] = []
        mix: list[tuple[float, Fault]] = []
        for raw_item in chunk.split(","):
            item = raw_item.strip()
            if not item:
                raise ConfigurationError(f"empty fault in {text!r}")
            if "%" in item.split()[0]:
                share_text, _, rest = item.partition("%")
                mix.append((_number(share_text, "share") / 100.0, parse_fault(rest)))
                continue
            repeat = _REPEAT.match(item)
            text_item, count = (repeat.group(1), int(repeat.group(2))) if repeat else (item, 1)
            script.extend([parse_fault(text_item)] * count)
        rules.append(FaultRule(route=route, script=tuple(script), mix=tuple(mix),
                               after=after, until=until))
    return tuple(rules)


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """A token bucket over all API routes: ``rate`` requests/s, bursts up to ``burst``."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ConfigurationError("RateLimit needs rate > 0 and burst >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosProfile:
    """A named set of fault rules (and maybe a rate limit) for demos and soak tests."""

    name: str
    description: str
    rules: tuple[FaultRule, ...] = ()
    rate_limit: RateLimit | None = None


CHAOS_PROFILES: dict[str, ChaosProfile] = {
    "none": ChaosProfile(name="none", description="no faults: a perfectly healthy provider"),
    "flaky": ChaosProfile(
        name="flaky",
        description="transient failures that retrying with the same key always fixes: nothing "
                    "runs on the failed attempts",
        rules=parse_rules("*: 5% 503, 2% 502, 2% reset, 2% lock-timeout, 1% idle-close, "
                          "5% latency seconds=0.05"),
    ),
    "outage": ChaosProfile(
        name="outage",
        description="healthy, then every API request answers 503 from 0.5 s to 3.0 s after the "
                    "first request, then healthy again",
        rules=parse_rules("*@0.5-3.0: 100% 503"),
    ),
    "rate-limited": ChaosProfile(
        name="rate-limited",
        description="a 100 requests/s token bucket (burst 50) answering 429 rate_limit without "
                    "Retry-After, as Stripe does, plus 3% 429 with Retry-After: 1 and 1% with "
                    "an HTTP-date one second ahead",
        rules=parse_rules("*: 3% 429 retry-after=1, 1% 429 retry-after-date=1"),
        rate_limit=RateLimit(rate=100.0, burst=50),
    ),
    "ambiguous": ChaosProfile(
        name="ambiguous",
        description="POSTs whose outcome the client cannot see: the operation ran, then 4% "
                    "commit-then-reset, 2% commit-then-500 (the key replays the 500), 2% "
                    "truncated body, 2% malformed JSON, 1% black hole after commit (held "
                    "until the client gives up)",
        rules=parse_rules("POST: 4% commit-then-reset, 2% commit-then-500, 2% truncate, "
                          "2% malformed-json, 1% black-hole commit=true"),
    ),
}


@dataclass(slots=True)
class _RuleState:
    rule: FaultRule
    position: int = 0


class FaultPlan:
    """The rules in force and the seeded random source, shared by the server's requests.

    Thread-safe: tests change the plan from their thread while the server draws from it.
    Rules are consulted in the order they were added; the first that yields a fault (a script
    item, or a hit of its mix) decides. A scripted ``ok`` lets the request through and stops
    the search.
    """

    def __init__(self, *, seed: int | None = None, now: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._now = now
        self._rules: list[_RuleState] = []
        self._first: float | None = None
        self._injected: Counter[str] = Counter()

    # -- configuration -----------------------------------------------------------------------

    def add(self, *rules: FaultRule) -> None:
        with self._lock:
            self._rules.extend(_RuleState(r) for r in rules)

    def load(self, text: str) -> tuple[FaultRule, ...]:
        """Add the rules written in ``text``; returns them."""
        rules = parse_rules(text)
        self.add(*rules)
        return rules

    def script(self, route: str, *faults: Fault | str) -> FaultRule:
        """Next requests on ``route`` get these faults, one each, in order; then normal."""
        rule = FaultRule(route=route, script=tuple(_as_fault(f) for f in faults))
        self.add(rule)
        return rule

    def share(self, route: str, share: float, fault: Fault | str, *,
              after: float | None = None, until: float | None = None) -> FaultRule:
        """A fraction ``share`` (0..1) of requests on ``route`` get ``fault``."""
        rule = FaultRule(route=route, mix=((share, _as_fault(fault)),), after=after, until=until)
        self.add(rule)
        return rule

    def use_profile(self, profile: ChaosProfile) -> None:
        self.add(*profile.rules)

    def clear(self) -> None:
        """Remove every rule (counters stay; see :meth:`reset_counters`)."""
        with self._lock:
            self._rules.clear()
            self._first = None

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self._rng.seed(seed)

    def reset_counters(self) -> None:
        with self._lock:
            self._injected.clear()

    @property
    def injected(self) -> Counter[str]:
        """How many times each fault was acted out, by spec name (a snapshot)."""
        with self._lock:
            return Counter(self._injected)

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        with self._lock:
            return tuple(s.rule for s in self._rules)

    def pending(self) -> int:
        """Scripted faults not yet consumed."""
        with self._lock:
            return sum(len(s.rule.script) - s.position for s in self._rules)

    def describe(self) -> str:
        return "\n".join(str(r) for r in self.rules)

    # -- decision ----------------------------------------------------------------------------

    def draw(self, route: str, method: str) -> Fault | None:
        """The fault for one request on ``route``, or ``None`` for normal service."""
        now = self._now()
        with self._lock:
            if self._first is None:
                self._first = now
            elapsed = now - self._first
            for state in self._rules:
                rule = state.rule
                if not rule.matches(route, method):
                    continue
                if state.position < len(rule.script):
                    fault = rule.script[state.position]
                    state.position += 1
                    return self._count(fault)
                if rule.mix and rule.active(elapsed):
                    u = self._rng.random()
                    acc = 0.0
                    for share, fault in rule.mix:
                        acc += share
                        if u < acc:
                            return self._count(fault)
            return None

    def _count(self, fault: Fault) -> Fault | None:
        if fault.kind is FaultKind.OK:
            return None
        self._injected[fault.name] += 1
        return fault


def _as_fault(fault: Fault | str) -> Fault:
    return fault if isinstance(fault, Fault) else parse_fault(fault)


def describe_profiles(profiles: Iterable[ChaosProfile] = CHAOS_PROFILES.values()) -> str:
    return "\n".join(f"{p.name}: {p.description}" for p in profiles)

"""Observability is data: policies emit frozen events to a sink.

Every event has a stable dotted ``kind`` (``"retry.scheduled"``), the ``operation`` it concerns
and ``at``, the clock time it happened. Log, metric and trace sinks subscribe by implementing
:class:`EventSink`; policies never log directly. Events are emitted off the happy path only
(a retry, a rejection, a state change), so a sink costs nothing on calls that succeed, unless
it opts in to the *per-call* events (``call.started``, ``call.finished``, ``attempt.started``,
``attempt.succeeded``, ``attempt.failed``) by setting ``per_call = True``: metric and trace
sinks do; log sinks may.

Events never carry secrets: errors are described by their type name, not their message.

**An observer never changes an outcome.** Every place that emits holds its sink through
:func:`guard` (or calls :func:`emit_safely`): a sink that raises is caught, reported once per
sink type and error type through the ``egress.events`` logger, counted
(:func:`sink_failures`), and the call goes on as if nothing had been observed. See
``docs/observability.md`` for the table of every kind.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    # Type checkers see plain frozen dataclasses, which is what the events are.
    from dataclasses import dataclass as _event
else:

    def _event(**options: Any) -> Any:
        # Defining a dataclass compiles its __init__, __repr__, __eq__, __hash__ and, frozen,
        # __setattr__ and __delattr__ (exec of generated source, about 0.15 ms each): for the
        # ~30 events that was most of what importing egress cost. Here dataclasses compiles
        # none of them: Event compares, hashes, shows, pickles and refuses assignment for every
        # event from its fields as dataclasses would, and each class's __init__ is written, the
        # same as dataclasses writes it, the first time one is built. The classes are made as
        # unfrozen dataclasses and marked frozen once all are defined (_mark_frozen), so a
        # subclass declared with @dataclass(frozen=True) elsewhere is checked as usual. fields(),
        # replace(), asdict() and slots are dataclasses' own.
        options = {**options, "frozen": False}

        def make(cls: type) -> type:
            cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, **options)
            cls.__init__ = _first_init  # its own: a subclass never inherits a parent's fields
            _unmarked.append(cls)
            return cls

        return make

    _unmarked: list[type] = []
    _frozen: set[type] = set()

    def _first_init(self: Any, **fields: Any) -> None:
        cls = type(self)
        cls.__init__ = _specialise(cls, "__init__")  # from now on, the compiled one
        cls.__init__(self, **fields)


__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "AttemptSucceeded",
    "AttemptTimedOut",
    "BudgetExhausted",
    "BulkheadRejected",
    "CallFinished",
    "CallStarted",
    "CallbackSink",
    "CircuitRejected",
    "CircuitStateChanged",
    "CircuitThresholdExceeded",
    "DeadlineExceeded",
    "Event",
    "EventSink",
    "FanOutSink",
    "GuardedSink",
    "InsecureTransport",
    "NULL_SINK",
    "NestedRetrySuppressed",
    "NullSink",
    "RateLimitPaused",
    "RateLimitRejected",
    "RateLimitWaited",
    "Reconciled",
    "RedirectFollowed",
    "RetryExhausted",
    "RetryGivenUp",
    "RetryScheduled",
    "TokenRefreshed",
    "attempt_started",
    "attempt_succeeded",
    "call_finished",
    "call_started",
    "emit_safely",
    "guard",
    "sink_failures",
    "sink_raised",
    "unguarded",
    "wants_per_call",
    "wants_starts",
]

_LOG = logging.getLogger(__name__)
# A library never configures logging; the NullHandler keeps Python's last-resort handler from
# printing egress's records when the application has not configured any. (Here, not in
# egress/__init__.py, which imports nothing eagerly: every module that logs imports this one.)
logging.getLogger("egress").addHandler(logging.NullHandler())


@_event(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``kind`` is the stable name sinks and dashboards key on."""

    kind: ClassVar[str] = "event"
    #: Per-call events go only to sinks that opt in (``per_call = True``): they are on every call.
    per_call: ClassVar[bool] = False
    operation: str
    at: float

    if not TYPE_CHECKING:  # what @dataclass would have generated; see _event

        def __repr__(self) -> str:
            shown = ", ".join(f"{name}={value!r}" for name, value in _named_values(self))
            return f"{type(self).__qualname__}({shown})"

        def __eq__(self, other: object) -> bool:
            if other.__class__ is self.__class__:
                return _values(self) == _values(other)
            return NotImplemented

        def __hash__(self) -> int:
            return hash(_values(self))

        def __setattr__(self, name: str, value: Any) -> None:
            if type(self) in _frozen or name in _names(type(self)):
                raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
            object.__setattr__(self, name, value)  # a plain subclass's own attribute

        def __delattr__(self, name: str) -> None:
            if type(self) in _frozen or name in _names(type(self)):
                raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
            object.__delattr__(self, name)

        def __getstate__(self) -> tuple[Any, ...]:  # pickle and copy: slots, no __dict__
            return _values(self)

        def __setstate__(self, state: tuple[Any, ...]) -> None:
            for name, value in zip(_names(type(self)), state, strict=True):
                object.__setattr__(self, name, value)


@_event(frozen=True, slots=True, kw_only=True)
class RetryScheduled(Event):
    """An attempt failed with a retryable error; the next starts after ``delay`` seconds."""

    kind: ClassVar[str] = "retry.scheduled"
    attempt: int
    delay: float
    error: str
    hinted: bool = False


@_event(frozen=True, slots=True, kw_only=True)
class RetryExhausted(Event):
    """The stop condition ended the retries; the last error is re-raised."""

    kind: ClassVar[str] = "retry.exhausted"
    attempts: int
    elapsed: float
    error: str


@_event(frozen=True, slots=True, kw_only=True)
class RetryGivenUp(Event):
    """A retryable error was not retried for a reason other than the stop condition.

    ``reason`` is ``"retry_after_too_long"`` (the server's hint exceeded ``max_retry_after``).
    """

    kind: ClassVar[str] = "retry.given_up"
    attempts: int
    reason: str
    error: str


@_event(frozen=True, slots=True, kw_only=True)
class NestedRetrySuppressed(Event):
    """A Retry inside another Retry's attempt ran a single attempt instead of multiplying."""

    kind: ClassVar[str] = "retry.nested_suppressed"


@_event(frozen=True, slots=True, kw_only=True)
class BudgetExhausted(Event):
    """A retry was refused by the retry budget; the original error is re-raised."""

    kind: ClassVar[str] = "retry.budget_exhausted"
    budget: str
    attempts: int
    error: str


@_event(frozen=True, slots=True, kw_only=True)
class DeadlineExceeded(Event):
    """The overall deadline passed, or the next backoff would end after it."""

    kind: ClassVar[str] = "deadline.exceeded"
    budget: float
    where: str


@_event(frozen=True, slots=True, kw_only=True)
class AttemptTimedOut(Event):
    """One attempt ran past its own time limit and was cancelled."""

    kind: ClassVar[str] = "timeout.attempt"
    limit: float


@_event(frozen=True, slots=True, kw_only=True)
class CircuitStateChanged(Event):
    """A breaker moved between states (``closed``, ``open``, ``half_open``, ...). Once each."""

    kind: ClassVar[str] = "circuit.state_changed"
    breaker: str
    old: str
    new: str
    failure_rate: float | None = None
    slow_call_rate: float | None = None


@_event(frozen=True, slots=True, kw_only=True)
class CircuitRejected(Event):
    """A call was refused because the breaker is open or its trial slots are taken."""

    kind: ClassVar[str] = "circuit.rejected"
    breaker: str
    retry_after: float | None


@_event(frozen=True, slots=True, kw_only=True)
class CircuitThresholdExceeded(Event):
    """A METRICS_ONLY breaker's rates reached a threshold: a live breaker would have opened.

    Emitted once each time the rates cross from below to above (shadow-mode rollouts).
    """

    kind: ClassVar[str] = "circuit.threshold_exceeded"
    breaker: str
    failure_rate: float | None
    slow_call_rate: float | None


@_event(frozen=True, slots=True, kw_only=True)
class BulkheadRejected(Event):
    """A call was refused: no free slot and no room (or time) in the queue."""

    kind: ClassVar[str] = "bulkhead.rejected"
    bulkhead: str
    reason: str


@_event(frozen=True, slots=True, kw_only=True)
class RateLimitRejected(Event):
    """A call was refused because no token could be had within the allowed wait."""

    kind: ClassVar[str] = "ratelimit.rejected"
    limiter: str
    retry_after: float | None


@_event(frozen=True, slots=True, kw_only=True)
class RateLimitWaited(Event):
    """A call waits ``delay`` seconds for a slot of a limiter before it goes on (per-call:
    opt-in, as a limiter spreading calls makes most of them wait; always in the call's report).

    ``cause`` is ``"ours"`` (the limiter's own rate) or ``"server"`` (a pause a server's hint,
    a 429, put on the limiter).
    """

    kind: ClassVar[str] = "ratelimit.waited"
    per_call: ClassVar[bool] = True
    limiter: str
    delay: float
    cause: str


@_event(frozen=True, slots=True, kw_only=True)
class RateLimitPaused(Event):
    """A limiter was paused by a server hint (429 + Retry-After) until ``until`` (clock time)."""

    kind: ClassVar[str] = "ratelimit.paused"
    limiter: str
    until: float


@_event(frozen=True, slots=True, kw_only=True)
class InsecureTransport(Event):
    """An HTTP client was built with certificate verification off (``verify=False``, acknowledged).

    ``operation`` is the client's base URL origin.
    """

    kind: ClassVar[str] = "http.insecure_transport"


@_event(frozen=True, slots=True, kw_only=True)
class RedirectFollowed(Event):
    """An HTTP client followed a redirect; ``cross_origin`` means credentials were stripped."""

    kind: ClassVar[str] = "http.redirect_followed"
    status: int
    cross_origin: bool


@_event(frozen=True, slots=True, kw_only=True)
class TokenRefreshed(Event):
    """An HTTP client fetched a new OAuth2 token; ``after_401`` when the server refused the old."""

    kind: ClassVar[str] = "http.token_refreshed"
    after_401: bool


@_event(frozen=True, slots=True, kw_only=True)
class Reconciled(Event):
    """A payment operation was settled by asking the provider (``reconcile``).

    ``how`` is ``"found"`` (the provider holds its result) or ``"absent"`` (the provider proved
    nothing happened, or knows nothing of it). While that cannot be proven yet, the caller gets
    ``OutcomeUnknown`` and no event.
    """

    kind: ClassVar[str] = "payments.reconciled"
    how: str


# -- per call and per attempt ----------------------------------------------------------------


@_event(frozen=True, slots=True, kw_only=True)
class CallStarted(Event):
    """A logical call entered a pipeline (per-call: opt-in)."""

    kind: ClassVar[str] = "call.started"
    per_call: ClassVar[bool] = True


@_event(frozen=True, slots=True, kw_only=True)
class CallFinished(Event):
    """A logical call left its pipeline (per-call: opt-in).

    ``outcome`` is ``"ok"``, ``"rejected"`` (a policy refused: nothing sent), ``"timeout"``
    (the deadline), ``"unknown"`` (a payment's outcome is in doubt) or ``"error"``; ``error``
    is the exception's type name (``None`` when ok); ``attempts`` counts the attempts made.
    """

    kind: ClassVar[str] = "call.finished"
    per_call: ClassVar[bool] = True
    outcome: str
    duration: float
    attempts: int
    error: str | None = None


@_event(frozen=True, slots=True, kw_only=True)
class _AttemptEvent(Event):
    """What every per-attempt event says: which attempt, and ``method``/``server`` for HTTP."""

    per_call: ClassVar[bool] = True
    attempt: int
    method: str | None = None
    server: str | None = None


@_event(frozen=True, slots=True, kw_only=True)
class AttemptStarted(_AttemptEvent):
    """One attempt of a call starts (per-call: opt-in)."""

    kind: ClassVar[str] = "attempt.started"


@_event(frozen=True, slots=True, kw_only=True)
class AttemptSucceeded(_AttemptEvent):
    """One attempt returned (per-call: opt-in). ``status`` is the HTTP status, if any."""

    kind: ClassVar[str] = "attempt.succeeded"
    duration: float
    status: int | None = None


@_event(frozen=True, slots=True, kw_only=True)
class AttemptFailed(_AttemptEvent):
    """One attempt raised (per-call: opt-in).

    ``error`` is the type name; ``sent`` is the error's fact (``False``: nothing left this host,
    ``True``: maybe processed, ``None``: not an upstream error); ``status`` the HTTP status of a
    refused answer.
    """

    kind: ClassVar[str] = "attempt.failed"
    error: str
    duration: float
    sent: bool | None = None
    status: int | None = None


# The per-call events are built on every call for per-call sinks. A frozen dataclass's __init__
# looks ``object.__setattr__`` up again for each field; these builders (keyword-only, every
# field required, made from the dataclass's own fields as dataclasses makes __init__) cost
# about half as much. Tests hold them to the constructors.
_E = TypeVar("_E", bound=Event)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _values(event: Event) -> tuple[Any, ...]:
    return tuple(getattr(event, name) for name in _names(type(event)))


def _named_values(event: Event) -> Iterable[tuple[str, Any]]:
    return ((name, getattr(event, name)) for name in _names(type(event)))


def _specialise(cls: type[_E], kind: str) -> Callable[..., Any]:
    """``cls``'s keyword-only ``__init__`` (or, for ``kind="build"``, a builder that makes the
    event without calling any ``__init__`` and takes every field), as dataclasses writes it."""
    scope: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "cls": cls}
    params = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING or not f.init:  # not written here
            raise TypeError(f"{cls.__qualname__}.{f.name}: an event field takes a plain default")
        if kind == "build" or f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    head = "self, *" if kind == "__init__" else "*"
    make = [] if kind == "__init__" else ["    self = _new(cls)"]
    source = "\n".join([f"def {kind}({head}, {', '.join(params)}):", *make,
                        *(f"    _set(self, {name!r}, {name})" for name in _names(cls)),
                        "    return None" if kind == "__init__" else "    return self"])
    exec(source, scope)  # noqa: S102 (fixed source from the dataclass's own field names)
    made: Callable[..., Any] = scope[kind]
    made.__qualname__ = f"{cls.__qualname__}.{kind}"
    if kind == "__init__":  # for inspect.signature() and help(), as dataclasses annotates it
        made.__annotations__ = {f.name: f.type for f in dataclasses.fields(cls)} | {"return": None}
    return made


def _builder(cls: type[_E]) -> Callable[..., _E]:
    build: Callable[..., _E] = _specialise(cls, "build")
    build.__doc__ = f"``{cls.__name__}(...)`` with every field given, built faster."
    return build


if not TYPE_CHECKING:

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True, init=False, repr=False,
                           eq=False)
    class _Frozen:  # what dataclasses records for a frozen event: borrowed by every event
        pass

    def _mark_frozen() -> None:
        for cls in _unmarked:
            cls.__dataclass_params__ = _Frozen.__dataclass_params__
            _frozen.add(cls)
        _unmarked.clear()

    _mark_frozen()

call_started = _builder(CallStarted)
call_finished = _builder(CallFinished)
attempt_started = _builder(AttemptStarted)
attempt_succeeded = _builder(AttemptSucceeded)


@runtime_checkable
class EventSink(Protocol):
    """Receives events. Should be cheap and should not raise; if it does, egress contains it.

    A sink that wants the per-call events (``Event.per_call``) sets ``per_call = True``.
    """

    def emit(self, event: Event) -> None: ...


def wants_per_call(sink: object) -> bool:
    """Whether ``sink`` opted in to the per-call events."""
    return getattr(sink, "per_call", False) is True


def wants_starts(sink: object) -> bool:
    """Whether a per-call ``sink`` also wants ``call.started`` and ``attempt.started``.

    A sink that only counts ends (a metrics sink) sets ``per_call_starts = False``: then those
    two events are not even built. The default is ``True``.
    """
    return wants_per_call(sink) and getattr(sink, "per_call_starts", True) is not False


class NullSink:
    """Drops every event: the default."""

    __slots__ = ()

    def emit(self, event: Event) -> None:
        return None

    def __repr__(self) -> str:
        return "NullSink()"


NULL_SINK = NullSink()

# -- isolation: a failing observer is caught, reported once, counted --------------------------

_failures_lock = threading.Lock()
_failures: dict[str, int] = {}
_reported: set[tuple[str, str]] = set()


def _sink_failed(sink: object, event: Event, exc: Exception) -> None:
    name = type(sink).__qualname__
    error = type(exc).__name__
    with _failures_lock:
        _failures[name] = _failures.get(name, 0) + 1
        first = (name, error) not in _reported
        if first:
            _reported.add((name, error))
    if first:  # once per sink type and error type: a broken sink must not flood the logs
        _LOG.warning("egress: event sink %s raised %s on %r; the event was dropped and the call "
                     "went on (reported once; see egress.events.sink_failures())",
                     name, error, event.kind, exc_info=exc,
                     extra={"event": "sink.failed", "sink": name, "error": error})


def sink_failures() -> dict[str, int]:
    """How many events each sink type failed to take since the process started."""
    with _failures_lock:
        return dict(_failures)


def unguarded(sink: EventSink) -> EventSink:
    """The sink a :class:`GuardedSink` wraps (``sink`` itself otherwise), for an emitter that
    contains failures itself (:func:`sink_raised`) and saves a call per event."""
    return sink.inner if isinstance(sink, GuardedSink) else sink


def sink_raised(sink: object, event: Event, exc: Exception) -> None:
    """Contain ``exc``, raised by ``sink`` on ``event``: counted, reported once, dropped."""
    _sink_failed(sink, event, exc)


def emit_safely(sink: EventSink, event: Event) -> None:
    """``sink.emit(event)``, except that an exception from the sink never reaches the caller."""
    try:
        sink.emit(event)
    except Exception as exc:
        _sink_failed(sink, event, exc)


class GuardedSink:
    """Wraps a sink so that nothing it raises can change the caller's outcome."""

    __slots__ = ("inner", "per_call", "per_call_starts")

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.per_call = wants_per_call(inner)
        self.per_call_starts = wants_starts(inner)

    def emit(self, event: Event) -> None:
        try:
            self.inner.emit(event)
        except Exception as exc:
            _sink_failed(self.inner, event, exc)

    def __repr__(self) -> str:
        return f"GuardedSink({self.inner!r})"


def guard(sink: EventSink) -> EventSink:
    """``sink`` made safe to emit to (the same object if it already is)."""
    if isinstance(sink, GuardedSink | NullSink | FanOutSink):
        return sink
    return GuardedSink(sink)


class CallbackSink:
    """Calls a function with each event (its exceptions are contained like any sink's).

    ``per_call=True`` asks for the per-call events too.
    """

    __slots__ = ("_callback", "per_call")

    def __init__(self, callback: Callable[[Event], object], *, per_call: bool = False) -> None:
        self._callback = callback
        self.per_call = per_call

    def emit(self, event: Event) -> None:
        self._callback(event)


class FanOutSink:
    """Delivers each event to several sinks, in order; one failing sink never starves the others.

    Per-call events reach only the members that opted in.
    """

    __slots__ = ("_all", "_per_call", "per_call", "per_call_starts")

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        members = tuple(guard(s) for s in sinks)
        self._all = members
        self._per_call = tuple(s for s in members if wants_per_call(s))
        self.per_call = bool(self._per_call)
        self.per_call_starts = any(wants_starts(s) for s in members)

    def emit(self, event: Event) -> None:
        for sink in self._per_call if event.per_call else self._all:
            sink.emit(event)

"""CircuitBreaker against a small, naive reference model (hypothesis stateful testing).

The model keeps the window as a plain list, recomputes every rate from scratch, and finds the
half-open verdict by trying every possible outcome of the trial calls still to come. Calls may
overlap: a call is started (permission asked) and finished (outcome reported) in separate steps,
with time passing and transitions happening in between.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from egress.errors import CircuitOpenError
from egress.events import CircuitStateChanged, CircuitThresholdExceeded
from egress.policies import CircuitBreaker, CircuitState, CountWindow
from egress.testing import FakeClock, RecordingSink


@dataclass
class Model:
    size: int
    min_calls: int
    fthr: float
    sthr: float
    slow: float
    wait: float
    mult: float
    cap: float
    probes: int
    ho_max: float | None
    state: str = "closed"
    epoch: int = 0
    window: list[tuple[bool, bool]] = field(default_factory=list)
    trials: list[tuple[bool, bool]] = field(default_factory=list)
    slots: int = 0
    opens: int = 0
    open_until: float = 0.0
    ho_until: float = float("inf")
    over: bool = False
    changes: list[tuple[str, str]] = field(default_factory=list)
    exceeded: int = 0

    def move(self, new: str, now: float) -> None:
        if new != self.state:
            self.changes.append((self.state, new))
        self.state = new
        self.epoch += 1
        if new == "open":
            self.opens += 1
            self.open_until = now + min(self.cap, self.wait * self.mult ** (self.opens - 1))
        elif new == "half_open":
            self.trials = []
            self.slots = self.probes
            self.ho_until = float("inf") if self.ho_max is None else now + self.ho_max
        elif new != "forced_open":
            self.window = []
            self.over = False
            if new != "metrics_only":
                self.opens = 0

    def is_over(self, outcomes: list[tuple[bool, bool]], minimum: int) -> bool:
        n = len(outcomes)
        if n == 0 or n < minimum:
            return False
        failed = sum(f for f, _ in outcomes)
        slow = sum(s for _, s in outcomes)
        return failed / n >= self.fthr or slow / n >= self.sthr

    def acquire(self, now: float) -> tuple[int | None, float | None]:
        """(epoch, None) when permitted, (None, retry_after) when rejected."""
        if self.state == "open" and now >= self.open_until:
            self.move("half_open", now)
        elif self.state == "half_open" and now >= self.ho_until:
            self.move("open", now)
        if self.state in ("closed", "disabled", "metrics_only"):
            return self.epoch, None
        if self.state == "half_open" and self.slots > 0:
            self.slots -= 1
            return self.epoch, None
        return None, (self.open_until - now if self.state == "open" else None)

    def record(self, epoch: int, now: float, failed: bool, slow: bool) -> None:
        if epoch != self.epoch or self.state not in ("closed", "half_open", "metrics_only"):
            return
        if self.state == "half_open":
            if now >= self.ho_until:
                self.move("open", now)
                return
            self.trials.append((failed, slow))
            left = self.probes - len(self.trials)
            endings = [self.is_over(self.trials + list(rest), self.probes)
                       for rest in itertools.product(
                           [(False, False), (True, False), (False, True), (True, True)],
                           repeat=left)]
            if all(endings):
                self.move("open", now)
            elif not any(endings):
                self.move("closed", now)
            return
        self.window = [*self.window, (failed, slow)][-self.size:]
        over = self.is_over(self.window, self.min_calls)
        if self.state == "closed":
            if over:
                self.move("open", now)
        elif over != self.over:
            self.over = over
            self.exceeded += over

    def release(self, epoch: int) -> None:
        if epoch == self.epoch and self.state == "half_open":
            self.slots += 1

    def counts(self) -> tuple[int, int, int]:
        outcomes = self.trials if self.state == "half_open" else self.window
        return len(outcomes), sum(f for f, _ in outcomes), sum(s for _, s in outcomes)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[int, int, float]] = []  # (model epoch, real gen, start)

    @initialize(
        size=st.integers(1, 6), min_calls=st.integers(1, 8),
        fthr=st.sampled_from([0.25, 0.5, 0.75, 1.0]), sthr=st.sampled_from([0.5, 1.0]),
        wait=st.sampled_from([1.0, 2.5]), mult=st.sampled_from([1.0, 2.0]),
        probes=st.integers(1, 3), ho_max=st.sampled_from([None, 3.0]),
        slow=st.sampled_from([1.0, 1.0, None]))
    def build(self, size: int, min_calls: int, fthr: float, sthr: float, wait: float,
              mult: float, probes: int, ho_max: float | None, slow: float | None) -> None:
        self.clock = FakeClock(auto_advance=False)
        self.sink = RecordingSink()
        self.breaker = CircuitBreaker(
            "model", window=CountWindow(size), minimum_calls=min_calls,
            failure_rate_threshold=fthr, slow_call_rate_threshold=sthr, slow_call_duration=slow,
            wait_in_open=wait, wait_multiplier=mult, max_wait_in_open=8.0,
            half_open_calls=probes, max_wait_in_half_open=ho_max, store=None,
            clock=self.clock, sink=self.sink)
        self.state = self.breaker._state
        self.gate = self.breaker._gate
        self.ctx = self.breaker._own
        self.model = Model(size, min(min_calls, size), fthr, sthr,
                           float("inf") if slow is None else slow, wait, mult, 8.0, probes, ho_max)

    @rule()
    def start(self) -> None:
        now = self.clock.now()
        epoch, retry_after = self.model.acquire(now)
        gen = self.state.fast_gen
        if epoch is None:
            assert gen < 0, "the breaker permitted a call the model rejects"
            with pytest.raises(CircuitOpenError) as info:
                self.gate.admit(self.ctx)
            expected = None if retry_after is None else pytest.approx(retry_after)
            assert info.value.retry_after == expected
            return
        if gen < 0:
            gen = self.gate.admit(self.ctx)  # raises if it rejects what the model permits
        self.pending.append((epoch, gen, now))

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "ignored"]))
    def finish(self, data: st.DataObject, outcome: str) -> None:
        self._finish(data.draw(st.integers(0, len(self.pending) - 1)), outcome)

    def _finish(self, index: int, outcome: str) -> None:
        epoch, gen, start = self.pending.pop(index)
        now = self.clock.now()
        if outcome == "ignored":
            self.model.release(epoch)
            self.state.release(gen)
            return
        failed = outcome == "failure"
        self.model.record(epoch, now, failed, now - start >= self.model.slow)
        if failed:
            self.gate.report(self.state.on_failure(gen, start, now), self.ctx)
        else:
            self.gate.report(self.state.on_success(gen, start, now), self.ctx)

    @rule(outcome=st.sampled_from(["success", "success", "failure", "ignored"]),
          duration=st.sampled_from([0.0, 0.0, 0.5, 1.0]))
    def call(self, outcome: str, duration: float) -> None:
        """A whole call at once: the common case, and the quickest way to fill windows."""
        before = len(self.pending)
        self.start()
        if len(self.pending) > before:
            self.clock.advance(duration)
            self._finish(len(self.pending) - 1, outcome)

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(action=st.sampled_from(["force_open", "disable", "metrics_only", "trip", "reset"]
                                 + ["none"] * 15))
    def manual(self, action: str) -> None:
        """Rarely (a manual transition wipes what the other rules built up)."""
        if action == "none":
            return
        target = {"force_open": "forced_open", "disable": "disabled", "trip": "open",
                  "metrics_only": "metrics_only", "reset": "closed"}[action]
        self.model.move(target, self.clock.now())
        getattr(self.breaker, action)()

    @invariant()
    def agrees(self) -> None:
        if not hasattr(self, "model"):
            return
        assert self.breaker.state is CircuitState(self.model.state)
        snap = self.breaker.snapshot()
        assert (snap.calls, snap.failed_calls, snap.slow_calls) == self.model.counts()
        assert snap.consecutive_opens == self.model.opens
        changes = [(e.old, e.new) for e in self.sink.of(CircuitStateChanged)]
        assert changes == self.model.changes
        assert len(self.sink.of(CircuitThresholdExceeded)) == self.model.exceeded


TestBreakerAgainstModel = BreakerMachine.TestCase
TestBreakerAgainstModel.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])

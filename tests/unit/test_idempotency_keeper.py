"""The idempotency policy (pure) and its driver, with a scripted operation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from egress.errors import (
    ConfigurationError,
    IdempotencyMismatch,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
)
from egress.payments import (
    DEFAULT_MAX_KEY_AGE,
    IdempotencyKeeper,
    IdempotencyRecord,
    RecordState,
    derive_key,
)
from egress.payments.idempotency import (
    IdempotencyKeyRenewed,
    IdempotencyKeyReused,
    OutcomeUnknownRaised,
    Step,
    decide,
)
from egress.payments.keeper import PROVEN_NO_EFFECT, Proof
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing import FakeClock, RecordingSink

NOW = 1_700_000_000.0


def record(state: RecordState = RecordState.PENDING, *, fp: str = "fp",
           created: float = NOW) -> IdempotencyRecord:
    r = IdempotencyRecord.new("s", "create", "o-1", fp, created)
    return r.with_state(state, created)


# -- decide ------------------------------------------------------------------------------------


def test_fresh_pending_and_unknown_are_sent_again_with_the_same_key() -> None:
    for state in (RecordState.PENDING, RecordState.UNKNOWN):
        assert decide(record(state), fingerprint="fp", now=NOW + 60) is Step.SEND


def test_succeeded_returns_the_stored_result() -> None:
    assert decide(record(RecordState.SUCCEEDED), fingerprint="fp", now=NOW) is Step.RETURN


def test_failed_renews_even_with_other_parameters() -> None:
    assert decide(record(RecordState.FAILED), fingerprint="other", now=NOW) is Step.RENEW


@pytest.mark.parametrize("state", [RecordState.PENDING, RecordState.UNKNOWN,
                                   RecordState.SUCCEEDED])
def test_other_parameters_are_a_mismatch(state: RecordState) -> None:
    with pytest.raises(IdempotencyMismatch, match="nothing was sent"):
        decide(record(state), fingerprint="other", now=NOW)


def test_old_keys_are_never_resent_blindly() -> None:
    old = record(RecordState.PENDING, created=NOW - DEFAULT_MAX_KEY_AGE - 1)
    assert decide(old, fingerprint="fp", now=NOW) is Step.SETTLE
    just_fresh = record(RecordState.UNKNOWN, created=NOW - DEFAULT_MAX_KEY_AGE)
    assert decide(just_fresh, fingerprint="fp", now=NOW) is Step.SEND
    assert DEFAULT_MAX_KEY_AGE < 24 * 3600


def test_derived_keys_are_deterministic_opaque_and_short() -> None:
    key = derive_key("acct", "create", "order-42", 0)
    assert key == derive_key("acct", "create", "order-42", 0)
    assert key != derive_key("acct", "create", "order-42", 1)
    assert key != derive_key("other", "create", "order-42", 0)
    assert key != derive_key("acct", "refund", "order-42", 0)
    assert "order-42" not in key
    assert len(derive_key("a" * 300, "b" * 300, "c" * 300, 10**9)) <= 255


# -- the driver ---------------------------------------------------------------------------------


@dataclass
class ScriptedOp:
    """A KeyedOperation whose provider is a dict and whose failures are scripted."""

    provider: dict[str, str]  # key -> result id (the provider's idempotency layer)
    reference: str = "o-1"
    fingerprint: str = "fp"
    operation: str = "create"
    failures: list[BaseException] = field(default_factory=list)
    commit_before_failing: bool = False
    sent: list[tuple[str, bool]] = field(default_factory=list)
    found: str | Proof | None = None  # what settle() finds at the provider
    held: str | None = None  # what lookup() finds before the first attempt
    lookup_fails: BaseException | None = None

    async def send(self, key: str, *, resumed: bool) -> str:
        self.sent.append((key, resumed))
        if self.failures:
            failure = self.failures.pop(0)
            if self.commit_before_failing:
                self.provider.setdefault(key, f"pi_{len(self.provider) + 1}")
            raise failure
        return self.provider.setdefault(key, f"pi_{len(self.provider) + 1}")

    async def fetch(self, result_id: str) -> str:
        return result_id

    async def settle(self, record: IdempotencyRecord) -> str | Proof | None:
        return self.found

    def result_id(self, result: str) -> str:
        return result

    async def lookup(self) -> str | None:
        if self.lookup_fails is not None:
            raise self.lookup_fails
        return self.held


def unknown(key: str = "k") -> OutcomeUnknown:
    return OutcomeUnknown("lost", idempotency_key=key, reference="o-1", operation="create")


@pytest.fixture
def keeper() -> IdempotencyKeeper:
    return IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                             clock=FakeClock(wall=NOW, auto_advance=False), sink=RecordingSink())


async def test_first_call_reserves_before_sending(keeper: IdempotencyKeeper) -> None:
    seen: list[IdempotencyRecord | None] = []

    class Checking(ScriptedOp):
        async def send(self, key: str, *, resumed: bool) -> str:
            seen.append(await keeper.store.get("s", "create", "o-1"))
            return await super().send(key, resumed=resumed)

    op = Checking({})
    assert await keeper.run(op) == "pi_1"
    assert seen[0] is not None and seen[0].state is RecordState.PENDING
    assert seen[0].key == op.sent[0][0] == derive_key("s", "create", "o-1", 0)
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.SUCCEEDED
    assert stored.result_id == "pi_1"


async def test_second_call_fetches_without_sending(keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    await keeper.run(ScriptedOp(provider))
    again = ScriptedOp(provider)
    assert await keeper.run(again) == "pi_1"
    assert again.sent == []


async def test_unknown_outcome_then_same_key_again(keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[unknown()], commit_before_failing=True)
    with pytest.raises(OutcomeUnknown):
        await keeper.run(op)
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.UNKNOWN
    assert await keeper.run(op) == "pi_1"  # the provider replays: one charge
    assert op.sent[0][0] == op.sent[1][0]
    assert op.sent[1][1] is True  # resumed: an earlier attempt may have been sent
    assert len(provider) == 1
    sink = keeper.sink
    assert isinstance(sink, RecordingSink)
    assert sink.of(OutcomeUnknownRaised) and sink.of(IdempotencyKeyReused)


async def test_decline_allows_a_new_key_and_new_parameters(
        keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[PaymentDeclined("no", decline_code="generic_decline")])
    with pytest.raises(PaymentDeclined):
        await keeper.run(op)
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.FAILED
    retry = ScriptedOp(provider, fingerprint="other card")
    assert await keeper.run(retry) == "pi_1"
    assert retry.sent[0][0] == derive_key("s", "create", "o-1", 1)
    assert retry.sent[0][1] is False
    sink = keeper.sink
    assert isinstance(sink, RecordingSink)
    assert sink.of(IdempotencyKeyRenewed)[0].generation == 1


async def test_provider_unavailable_keeps_the_key(keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[ProviderUnavailable("down")])
    with pytest.raises(ProviderUnavailable):
        await keeper.run(op)
    assert await keeper.run(op) == "pi_1"
    assert op.sent[0][0] == op.sent[1][0]


async def test_mismatch_sends_nothing(keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    await keeper.run(ScriptedOp(provider))
    other = ScriptedOp(provider, fingerprint="different amount")
    with pytest.raises(IdempotencyMismatch):
        await keeper.run(other)
    assert other.sent == []


async def test_crash_leaves_a_pending_record_that_is_resumed(
        keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[KeyboardInterrupt()], commit_before_failing=True)
    with pytest.raises(KeyboardInterrupt):
        await keeper.run(op)
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.PENDING
    assert await keeper.run(op) == "pi_1"
    assert len(provider) == 1


async def test_stale_record_is_settled_found() -> None:
    clock = FakeClock(wall=NOW, auto_advance=False)
    keeper: IdempotencyKeeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                                                       clock=clock)
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[unknown()], commit_before_failing=True)
    with pytest.raises(OutcomeUnknown):
        await keeper.run(op)
    clock.advance(DEFAULT_MAX_KEY_AGE + 1)
    op.found = "pi_1"
    assert await keeper.run(op) == "pi_1"
    assert len(op.sent) == 1  # never re-sent: asked the provider instead


async def test_stale_record_proven_absent_gets_a_new_key() -> None:
    clock = FakeClock(wall=NOW, auto_advance=False)
    keeper: IdempotencyKeeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                                                       clock=clock)
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[unknown()])
    with pytest.raises(OutcomeUnknown):
        await keeper.run(op)
    clock.advance(DEFAULT_MAX_KEY_AGE + 1)
    assert await keeper.run(op) == "pi_1"
    assert op.sent[1][0] == derive_key("s", "create", "o-1", 1)


async def test_reconcile_trusts_absence_only_after_settle_after() -> None:
    clock = FakeClock(wall=NOW, auto_advance=False)
    keeper: IdempotencyKeeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                                                       clock=clock, settle_after=600)
    op = ScriptedOp({}, failures=[unknown()])
    with pytest.raises(OutcomeUnknown):
        await keeper.run(op)
    clock.advance(10)
    with pytest.raises(OutcomeUnknown, match="absence is trusted after 600s"):
        await keeper.reconcile(op)
    clock.advance(600)
    assert await keeper.reconcile(op) is None
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.FAILED


async def test_reconcile_finds_and_records(keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[unknown()], commit_before_failing=True)
    with pytest.raises(OutcomeUnknown):
        await keeper.run(op)
    op.found = "pi_1"
    assert await keeper.reconcile(op) == "pi_1"
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.SUCCEEDED
    assert await keeper.run(op) == "pi_1"
    assert len(op.sent) == 1


async def test_reconcile_without_a_record_asks_the_provider(
        keeper: IdempotencyKeeper) -> None:
    assert await keeper.reconcile(ScriptedOp({})) is None
    assert await keeper.reconcile(ScriptedOp({}, found="pi_9")) == "pi_9"


async def test_reconcile_asks_the_provider_even_for_a_failed_record(
        keeper: IdempotencyKeeper) -> None:
    op = ScriptedOp({}, failures=[PaymentDeclined("no")])
    with pytest.raises(PaymentDeclined):
        await keeper.run(op)
    assert await keeper.reconcile(op) is None  # the proof holds: nothing there
    op.found = "pi_7"  # but the provider holds a payment: it wins over the local record
    assert await keeper.reconcile(op) == "pi_7"
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.SUCCEEDED
    assert stored.result_id == "pi_7"


async def test_proof_of_no_effect_settles_without_waiting() -> None:
    clock = FakeClock(wall=NOW, auto_advance=False)
    keeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s", clock=clock,
                               settle_after=600)
    op = ScriptedOp({}, failures=[unknown()])
    with pytest.raises(OutcomeUnknown):
        await keeper.run(op)
    op.found = PROVEN_NO_EFFECT  # e.g. a declined intent tagged with this key's generation
    assert await keeper.reconcile(op) is None
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.FAILED


async def test_lookup_before_the_first_attempt(keeper: IdempotencyKeeper) -> None:
    op = ScriptedOp({}, held="pi_old")
    assert await keeper.run(op) == "pi_old"
    assert op.sent == []
    stored = await keeper.store.get("s", "create", "o-1")
    assert stored is not None and stored.state is RecordState.SUCCEEDED
    assert await keeper.run(ScriptedOp({}, held="other")) == "pi_old"  # asked once only


async def test_a_failed_lookup_sends_nothing_and_keeps_no_record(
        keeper: IdempotencyKeeper) -> None:
    op = ScriptedOp({}, lookup_fails=IdempotencyMismatch("held for another amount"))
    with pytest.raises(IdempotencyMismatch):
        await keeper.run(op)
    assert op.sent == [] and await keeper.store.get("s", "create", "o-1") is None


async def test_lost_renewal_race_decides_again(keeper: IdempotencyKeeper) -> None:
    provider: dict[str, str] = {}
    op = ScriptedOp(provider, failures=[PaymentDeclined("no")])
    with pytest.raises(PaymentDeclined):
        await keeper.run(op)
    # Another worker renews first (and succeeds) between our read and our replace.
    store = keeper.store
    real_replace = store.replace
    raced = False

    async def racing_replace(rec: IdempotencyRecord, *, expected_key: str) -> bool:
        nonlocal raced
        if not raced:
            raced = True
            current = await store.get(*rec.ident)
            assert current is not None
            winner = current.renewed("fp", NOW).with_state(RecordState.SUCCEEDED, NOW, "pi_w")
            await real_replace(winner, expected_key=current.key)
        return await real_replace(rec, expected_key=expected_key)

    store.replace = racing_replace  # type: ignore[method-assign]
    assert await keeper.run(ScriptedOp(provider)) == "pi_w"


def test_configuration_is_validated() -> None:
    store = MemoryIdempotencyStore()
    with pytest.raises(ConfigurationError):
        IdempotencyKeeper(store, scope="")
    with pytest.raises(ConfigurationError, match="max_age"):
        IdempotencyKeeper(store, scope="s", max_age=25 * 3600)
    with pytest.raises(ConfigurationError, match="settle_after"):
        IdempotencyKeeper(store, scope="s", settle_after=-1)

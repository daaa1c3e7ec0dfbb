"""The payment path's fast constructions, each held equal to the checked, general one it stands
for: records and payments built without ``__init__``, the hand-written canonical request, the
create body's shortcut for requests without metadata. (Each of these runs once or more per
payment; a drift would change stored fingerprints or what is sent.)"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.adapters.stripe._parse import parse_payment_intent
from egress.adapters.stripe._requests import GENERATION_KEY, create_intent
from egress.adapters.stripe.form import encode_form
from egress.errors import InvalidPaymentRequest
from egress.payments import Money, Payment, PaymentRequest, PaymentStatus
from egress.payments._build import builder
from egress.payments.idempotency import IdempotencyRecord, RecordState, derive_key

texts = st.text(max_size=30)
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=30)


def _record_by_init(scope: str, reference: str, now: float) -> IdempotencyRecord:
    return IdempotencyRecord(scope=scope, operation="create", reference=reference,
                             key=derive_key(scope, "create", reference, 0), generation=0,
                             fingerprint="f" * 64, state=RecordState.PENDING, created_at=now,
                             updated_at=now)


@settings(max_examples=50, deadline=None)
@given(scope=ids, reference=texts.filter(bool), now=st.floats(0, 2e9),
       state=st.sampled_from(RecordState), result_id=st.none() | ids)
def test_records_built_fast_are_the_dataclass_s_own(scope: str, reference: str, now: float,
                                                     state: RecordState,
                                                     result_id: str | None) -> None:
    fast = IdempotencyRecord.new(scope, "create", reference, "f" * 64, now)
    slow = _record_by_init(scope, reference, now)
    assert type(fast) is IdempotencyRecord
    assert (fast, hash(fast), repr(fast)) == (slow, hash(slow), repr(slow))
    moved = fast.with_state(state, now + 1, result_id)
    assert moved == dataclasses.replace(slow, state=state, updated_at=now + 1,
                                        result_id=result_id)
    assert pickle.loads(pickle.dumps(moved)) == moved == copy.deepcopy(moved)
    with pytest.raises(dataclasses.FrozenInstanceError):
        moved.state = RecordState.FAILED  # type: ignore[misc]


def test_the_builder_s_fallback_builds_the_same_frozen_object() -> None:
    # Where an interpreter refuses the draft's class change, fields are stored one by one.
    build = builder(IdempotencyRecord, draft=False)
    slow = _record_by_init("s", "r", 1.0)
    made = build(**{f.name: getattr(slow, f.name) for f in dataclasses.fields(slow)})
    assert type(made) is IdempotencyRecord and made == slow
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.key = "k"  # type: ignore[misc]
    with pytest.raises(TypeError, match="slotted dataclass"):
        builder(dataclasses.make_dataclass("Loose", ["a"]))


requests = st.builds(
    PaymentRequest,
    amount=st.builds(Money.from_minor, st.integers(1, 10**12),
                     st.sampled_from(["USD", "JPY", "KWD", "EUR"])),
    reference=st.text(min_size=1, max_size=200).filter(str.isprintable),
    customer=st.none() | st.just("cus_1"),
    payment_method=st.just("pm_card_visa"),
    description=st.none() | st.text(max_size=50),
    metadata=st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=12),
                             max_size=4),
    confirm=st.booleans(), capture=st.booleans())


@settings(max_examples=100, deadline=None)
@given(request=requests)
def test_the_canonical_request_is_json_dumps_byte_for_byte(request: PaymentRequest) -> None:
    # Stored with every record as its fingerprint: one changed byte would refuse the retry of
    # a payment reserved by an earlier version.
    doc = {"amount": str(request.amount.amount), "currency": request.amount.currency,
           "reference": request.reference, "customer": request.customer,
           "payment_method": request.payment_method, "description": request.description,
           "metadata": dict(request.metadata), "confirm": request.confirm,
           "capture": request.capture}
    assert request.canonical() == json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=True).encode("ascii")


@settings(max_examples=80, deadline=None)
@given(reference=st.text(min_size=1, max_size=40).filter(str.isprintable),
       reference_key=st.sampled_from(["reference", "a", "order", "egress_key_generatioo",
                                      "egress_key_generationz", "zz", "x" * 40, "x" * 41,
                                      "ref[0]", "ref]", GENERATION_KEY]),
       generation=st.none() | st.integers(0, 12))
def test_the_create_body_without_metadata_is_the_params_form(
        reference: str, reference_key: str, generation: int | None) -> None:
    # The shortcut for requests without metadata of their own against the general path.
    req = PaymentRequest(amount=Money("20.00", "USD"), reference=reference,
                         payment_method="pm_card_visa")
    tagged = {reference_key: reference}
    if generation is not None:
        tagged[GENERATION_KEY] = str(generation)
    params: dict[str, Any] = {
        "amount": 2000, "currency": "usd", "capture_method": "automatic", "confirm": True,
        "metadata": {key: tagged[key] for key in sorted(tagged)},
        "payment_method": "pm_card_visa", "payment_method_types": ["card"]}
    if len(reference_key) > 40 or "[" in reference_key or "]" in reference_key:
        with pytest.raises(InvalidPaymentRequest, match="metadata keys"):
            create_intent(req, reference_key=reference_key, generation=generation)
        return
    built = create_intent(req, reference_key=reference_key, generation=generation)
    assert built.body == encode_form(params)
    assert built.path_params == {} and built.query == ()


intents = st.fixed_dictionaries({
    "id": ids.map(lambda s: f"pi_{s}"),
    "object": st.just("payment_intent"),
    "amount": st.integers(0, 10**9),
    "currency": st.sampled_from(["usd", "jpy", "eur"]),
    "status": st.sampled_from([s.value for s in PaymentStatus]),
    "created": st.integers(0, 4_000_000_000),
    "metadata": st.dictionaries(st.sampled_from(["reference", "egress_key_generation", "k"]),
                                texts, max_size=3),
    "customer": st.none() | ids,
    "payment_method": st.none() | ids | st.builds(lambda i: {"id": i}, ids),
    "description": st.none() | texts,
    "cancellation_reason": st.none() | st.just("abandoned"),
    "last_payment_error": st.none() | st.just({"decline_code": "insufficient_funds"}),
}, optional={"amount_received": st.integers(0, 10**9),
             "amount_capturable": st.none() | st.integers(0, 10**9)})


@settings(max_examples=100, deadline=None)
@given(obj=intents)
def test_parsed_payments_are_what_payment_init_makes(obj: dict[str, Any]) -> None:
    parsed = parse_payment_intent(obj, reference_key="reference")
    currency = obj["currency"].upper()

    def money(name: str) -> Money | None:
        value = obj.get(name)
        return None if value is None else Money.from_minor(value, currency)

    method = obj["payment_method"]
    checked = Payment(
        id=obj["id"], status=PaymentStatus(obj["status"]),
        amount=Money.from_minor(obj["amount"], currency),
        created=datetime.fromtimestamp(obj["created"], tz=UTC),
        reference=obj["metadata"].get("reference"),
        amount_received=money("amount_received"), amount_capturable=money("amount_capturable"),
        customer=obj["customer"],
        payment_method=method["id"] if isinstance(method, dict) else method,
        description=obj["description"], metadata=obj["metadata"],
        decline_code=None if obj["last_payment_error"] is None else "insufficient_funds",
        cancellation_reason=obj["cancellation_reason"])
    assert type(parsed) is Payment
    assert (parsed, hash(parsed), repr(parsed)) == (checked, hash(checked), repr(checked))
    assert parsed.created.tzinfo is UTC
    assert type(parsed.metadata).__name__ == "mappingproxy"
    obj["metadata"]["k"] = "changed later"  # the parsed payment keeps its own copy
    assert parsed.metadata == checked.metadata
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.status = PaymentStatus.CANCELED  # type: ignore[misc]


def _parse_json_by_decoder(content: bytes) -> object:
    """parse_json as it was written before it called the scanner itself: the reference."""
    from egress.adapters.stripe import _parse
    try:
        doc = _parse._DECODER.decode(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"response is not JSON ({type(exc).__name__})"
    except RecursionError:
        return "response JSON is nested too deeply"
    except ValueError as exc:
        return str(exc)
    return doc if isinstance(doc, dict) else "response is not a JSON object"


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=8).map(json.dumps)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(
    json_texts.map(str.encode),
    st.tuples(st.sampled_from(["", " ", "\n", "\t\r ", "\ufeff", "x"]), json_texts,
              st.sampled_from(["", " ", "\n", "x", "{}", "]"])).map(
                  lambda t: "".join(t).encode()),
    st.sampled_from([b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":-Infinity}', b'{"a":',
                     b"\xff{}", b'{"a":' * 5000, b"[" * 5000]),
    st.binary(max_size=40)))
def test_parse_json_answers_as_the_decoder_did(body: bytes) -> None:
    from egress.adapters.stripe._parse import parse_json
    try:
        got: object = parse_json(body)
    except ValueError as exc:
        got = str(exc)
    assert got == _parse_json_by_decoder(body)


def test_payment_requests_store_their_fields_as_the_generated_init_did() -> None:
    from egress.payments._build import filler
    given_: dict[str, Any] = {
        "amount": Money("20.00", "USD"), "reference": "o-1", "customer": None,
        "payment_method": "pm_card_visa", "description": "d", "confirm": True, "capture": False}
    made = PaymentRequest(**given_, metadata={"b": "2", "a": "1"})
    assert type(made) is PaymentRequest
    assert {name: getattr(made, name) for name in given_} == given_
    assert list(made.metadata.items()) == [("a", "1"), ("b", "2")]  # frozen, sorted
    assert dataclasses.replace(made, reference="o-2").reference == "o-2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.reference = "o-3"  # type: ignore[misc]

    class Tagged(PaymentRequest):  # a subclass (with a __dict__) takes the one-by-one path
        pass

    tagged = Tagged(**given_)
    assert type(tagged) is Tagged and tagged.reference == "o-1" and not tagged.metadata
    slow = object.__new__(PaymentRequest)
    filler(PaymentRequest, draft=False)(slow, **given_, metadata=made.metadata)
    assert slow == made

"""A subset of Stripe's Search Query Language for PaymentIntents (pure).

Supported: clauses ``field:value`` (equality), ``field~value`` (substring), ``field>n``,
``>=``, ``<``, ``<=`` on numbers, a leading ``-`` to negate, joined by ``AND`` or by ``OR``
(not both in one query, as at Stripe). Fields: ``metadata['key']`` (or ``metadata["key"]``),
``status``, ``currency``, ``customer``, ``amount``, ``created``. ``null`` matches a missing
value. Values are quoted with ``'`` or ``"``; numbers may be bare.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["QueryError", "parse_query"]

_FIELDS = frozenset({"status", "currency", "customer", "amount", "created", "description"})
_NUMERIC = frozenset({"amount", "created"})

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<neg>-)?
        (?P<field>metadata\[(?P<mq>['"])(?P<mkey>[^'"]*)(?P=mq)\]|[a-z_]+)
        (?P<op>>=|<=|:|~|>|<)
        (?:(?P<q>['"])(?P<sval>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<bare>[^\s'"]+))
      | (?P<join>AND|OR)
    )\s*""",
    re.VERBOSE,
)


class QueryError(ValueError):
    pass


Predicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class _Clause:
    negate: bool
    field: str
    metadata_key: str | None
    op: str
    value: str | None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        result = self._test(obj)
        return not result if self.negate else result

    def _test(self, obj: Mapping[str, Any]) -> bool:
        if self.metadata_key is not None:
            actual: Any = (obj.get("metadata") or {}).get(self.metadata_key)
        else:
            actual = obj.get(self.field)
        if self.value is None:
            return actual is None
        if actual is None:
            return False
        if self.field in _NUMERIC:
            wanted = int(self.value)
            return bool({
                ":": actual == wanted, ">": actual > wanted, ">=": actual >= wanted,
                "<": actual < wanted, "<=": actual <= wanted,
            }.get(self.op, False))
        if self.op == "~":
            return self.value.lower() in str(actual).lower()
        return str(actual) == self.value


def parse_query(query: str) -> Predicate:
    """Compile ``query``; raise :class:`QueryError` if the fake cannot read it."""
    pos = 0
    clauses: list[_Clause] = []
    joins: set[str] = set()
    expect_clause = True
    text = query.strip()
    if not text:
        raise QueryError("The query is empty")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(f"Could not parse the query at position {pos}")
        pos = match.end()
        if match.group("join"):
            if expect_clause:
                raise QueryError(f"Unexpected {match.group('join')}")
            joins.add(match.group("join"))
            expect_clause = True
            continue
        if not expect_clause:
            raise QueryError("Clauses must be joined by AND or OR")
        expect_clause = False
        field = match.group("field")
        mkey = match.group("mkey")
        if mkey is None and field not in _FIELDS:
            raise QueryError(f"Field '{field}' is an unsupported search field for "
                             "resource payment_intents")
        raw = match.group("sval")
        value = re.sub(r"\\(.)", r"\1", raw) if raw is not None else None
        if value is None:
            bare = match.group("bare")
            value = None if bare == "null" else bare
        op = match.group("op")
        if field in _NUMERIC and value is not None and not value.lstrip("-").isdigit():
            raise QueryError(f"Field '{field}' needs a whole number")
        if field not in _NUMERIC and op not in (":", "~"):
            raise QueryError(f"Operator {op} works only on numeric fields")
        clauses.append(_Clause(bool(match.group("neg")), "metadata" if mkey is not None
                               else field, mkey, op, value))
    if expect_clause:
        raise QueryError("The query ends with AND or OR")
    if len(joins) > 1:
        raise QueryError("A query may combine clauses with AND or with OR, not both")
    any_of = joins == {"OR"}

    def predicate(obj: Mapping[str, Any]) -> bool:
        results = (clause.matches(obj) for clause in clauses)
        return any(results) if any_of else all(results)

    return predicate

"""Stripe's v1 form encoding of nested parameters, deterministic to the byte.

``{"metadata": {"order": "42"}, "payment_method_types": ["card"]}`` becomes the pairs
``metadata[order]=42`` and ``payment_method_types[0]=card``: mappings nest with ``[key]``, lists
are always indexed, ``None`` is left out, booleans are ``true``/``false``. The order of the pairs
is the order of the mappings given, so a request built from the same values is always the same
bytes on the wire (the idempotency layer compares parameters; a retry must not differ).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = ["FormValue", "decode_form", "encode_form"]

_BRACKETS = re.compile(r"\[([^\]]*)\]")

FormValue = (
    str | int | bool | None | Mapping[str, "FormValue"] | Sequence["FormValue"]
)


def encode_form(params: Mapping[str, FormValue]) -> list[tuple[str, str]]:
    """Flatten ``params`` into ``(name, value)`` pairs in Stripe's bracket notation."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        _flatten(key, value, pairs)
    return pairs


def _flatten(name: str, value: FormValue, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        out.append((name, "true" if value else "false"))
    elif isinstance(value, int):
        out.append((name, str(value)))
    elif isinstance(value, str):
        out.append((name, value))
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{name}[{key}]", inner, out)
    elif isinstance(value, Sequence):
        for index, inner in enumerate(value):
            _flatten(f"{name}[{index}]", inner, out)
    else:  # pragma: no cover - the type forbids it
        raise TypeError(f"cannot form-encode a {type(value).__name__}")


def decode_form(pairs: Sequence[tuple[str, str]]) -> dict[str, object]:
    """The inverse of :func:`encode_form` (values stay strings): for tests and validation.

    ``a[b]=1`` becomes ``{"a": {"b": "1"}}``; a level whose keys are all ``0..n`` becomes a list.
    """
    root: dict[str, object] = {}
    for name, value in pairs:
        head, _, rest = name.partition("[")
        parts = [head, *_BRACKETS.findall("[" + rest)] if rest else [head]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return {key: _listify(value) for key, value in root.items()}


def _listify(value: object) -> object:
    if isinstance(value, dict):
        items = {key: _listify(inner) for key, inner in value.items()}
        if items and all(key.isdigit() for key in items):
            return [items[key] for key in sorted(items, key=int)]
        return items
    return value

"""Stripe's v1 form encoding, read back into nested values (pure).

Stripe's clients flatten nested parameters into form fields: ``metadata[order]=42``,
``payment_method_types[0]=card``, ``expand[]=latest_charge``, ``a[b][0][c]=x``. This module turns
the flat pairs back into a tree of ``dict`` / ``list`` / ``str`` and computes the fingerprint the
idempotency layer compares. Values stay strings: each operation converts the ones it knows
(``amount`` to an integer, ``confirm`` to a boolean) in :mod:`._params`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Union

__all__ = ["FormError", "FormValue", "Params", "fingerprint", "parse_pairs"]

FormValue = Union[str, "list[FormValue]", "dict[str, FormValue]"]
Params = dict[str, FormValue]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_MAX_DEPTH = 8


class FormError(ValueError):
    """A field name or structure Stripe would refuse (``param`` names the field)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _path(name: str) -> list[str]:
    match = _KEY.match(name)
    if match is None:
        raise FormError(f"Invalid parameter name: {name}", name)
    parts = [match.group(1), *_PART.findall(match.group(2))]
    if len(parts) > _MAX_DEPTH:
        raise FormError(f"Parameter nested too deeply: {name}", name)
    if "" in parts[:-1] or parts == [""]:
        raise FormError(f"Invalid parameter name: {name}", name)
    return parts


def parse_pairs(pairs: Iterable[tuple[str, str]]) -> Params:
    """Build nested parameters from decoded ``(name, value)`` pairs, in order.

    ``a[]`` appends to a list, ``a[0]`` / ``a[1]`` index one (indices must form ``0..n-1``),
    ``a[k]`` keys a dict. A name used both as a scalar and as a container is an error, as is a
    repeated scalar.
    """
    root: dict[str, object] = {}
    for name, value in pairs:
        parts = _path(name)
        node: dict[str, object] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if part in node:
                    raise FormError(f"Parameter given more than once: {name}", name)
                node[part] = value
                continue
            nxt = parts[i + 1]
            child = node.get(part)
            if nxt == "" and i + 1 == len(parts) - 1:
                # ``a[]=x``: append.
                if child is None:
                    child = _Appendable()
                    node[part] = child
                if not isinstance(child, _Appendable):
                    raise FormError(f"Invalid mix of list and object for {name}", name)
                child.items.append(value)
                break
            if child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                raise FormError(f"Invalid mix of value and object for {name}", name)
            node = child
    return _finish(root, "")


class _Appendable:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []


def _finish(node: dict[str, object], prefix: str) -> dict[str, FormValue]:
    out: dict[str, FormValue] = {}
    for key, value in node.items():
        name = f"{prefix}[{key}]" if prefix else key
        out[key] = _finish_value(value, name)
    return out


def _finish_value(value: object, name: str) -> FormValue:
    if isinstance(value, str):
        return value
    if isinstance(value, _Appendable):
        return list(value.items)
    assert isinstance(value, dict)
    finished = _finish(value, name)
    if finished and all(k.isascii() and k.isdigit() for k in finished):
        indices = sorted(int(k) for k in finished)
        # "a[00]" or "a[²]" (isdigit, not an index) is refused, never a KeyError/ValueError.
        if indices != list(range(len(indices))) or any(k != str(int(k)) for k in finished):
            raise FormError(f"Invalid array indices for {name}", name)
        return [finished[str(i)] for i in indices]
    return finished


def fingerprint(method: str, path: str, params: Params) -> str:
    """A stable digest of an operation's endpoint and parameters (order of fields ignored)."""
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()

"""Secrets typed so that no repr, log line or exception message can show them."""

from __future__ import annotations

import hmac

from egress.errors import ConfigurationError

__all__ = ["Secret"]


class Secret:
    """A secret string (API key, token, password).

    ``str()``, ``repr()`` and f-strings show a fixed mask; only :meth:`reveal` gives the value,
    so the one place that needs it (building an ``Authorization`` header) is easy to audit.
    Equality is constant-time. Not hashable, so it cannot become a dict key and leak in a dump.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str) or not value:
            raise ConfigurationError("Secret: the value must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        """The secret itself. Use only where it goes onto the wire."""
        return self._value

    def startswith(self, prefix: str) -> bool:
        """Whether the secret starts with ``prefix`` (e.g. ``"sk_live_"``), without revealing it."""
        return self._value.startswith(prefix)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")

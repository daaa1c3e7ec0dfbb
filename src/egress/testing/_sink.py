"""An event sink that remembers, for assertions."""

from __future__ import annotations

from typing import TypeVar

from egress.events import Event

__all__ = ["RecordingSink"]

E = TypeVar("E", bound=Event)


class RecordingSink:
    """Keeps every event it receives, in order. ``per_call=True`` also asks for the per-call
    events (``call.*``, ``attempt.*``)."""

    def __init__(self, *, per_call: bool = False) -> None:
        self.events: list[Event] = []
        self.per_call = per_call

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        """The ``kind`` of every event, in order."""
        return [e.kind for e in self.events]

    def clear(self) -> None:
        self.events.clear()

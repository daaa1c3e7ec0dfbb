"""Operability: turn egress's events into logs, metrics, traces and a live status page.

Every integration here is an :class:`~egress.events.EventSink`; pass one (or a
:class:`~egress.events.FanOutSink` of several) as ``sink=`` to a client, pipeline or adapter.

- :mod:`egress.observability.logging`: stdlib logging, JSON formatter, redaction (no extra).
- :mod:`egress.observability.prometheus`: ``PrometheusSink`` (the ``prometheus`` extra).
- :mod:`egress.observability.otel`: ``OpenTelemetrySink`` (the ``otel`` extra).

The optional libraries are imported only when those modules are.
"""

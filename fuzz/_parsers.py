"""The egress modules holding the parsers the targets reach: the only ones atheris instruments
for coverage (kept apart from targets.py, which imports egress)."""

MODULES = (
    "egress.http._hints", "egress.http._headers", "egress.http._body", "egress.http._codecs",
    "egress.http._redirect", "egress.http._url", "egress.http._safety", "egress.http._redact",
    "egress.http._error_facts", "egress.http._auth", "egress.http._response",
    "egress.payments.money", "egress.payments.models",
    "egress.adapters.stripe._parse", "egress.adapters.stripe._errors",
    "egress.adapters.stripe._amounts", "egress.adapters.stripe._requests",
    "egress.adapters.stripe.form", "egress.adapters.stripe.webhooks",
    "egress.testing.fake_stripe._forms", "egress.testing.fake_stripe._search",
    "egress.testing.fake_stripe._faults",
)

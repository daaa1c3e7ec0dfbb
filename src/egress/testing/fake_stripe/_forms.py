"""FakeStripe's side of Stripe's form encoding: the adapter's codec, read back (pure).

The decoder is :func:`egress.adapters.stripe.form.decode_form` (one codec for the adapter, the
fake and the tests): it turns the flat fields back into a tree of ``dict`` / ``list`` / ``str``.
Values stay strings: each operation converts the ones it knows (``amount`` to an integer,
``confirm`` to a boolean) in :mod:`._params`. This module adds the fingerprint the fake's
idempotency layer compares.
"""

from __future__ import annotations

import hashlib
import json

from egress.adapters.stripe.form import FormError, FormTree
from egress.adapters.stripe.form import decode_form as parse_pairs

__all__ = ["FormError", "FormTree", "DecodedForm", "fingerprint", "parse_pairs"]

#: A request's form body, decoded into its nested fields (``egress.http``'s ``Params`` is what a
#: caller passes to be encoded).
DecodedForm = dict[str, FormTree]


def fingerprint(method: str, path: str, params: DecodedForm) -> str:
    """A stable digest of an operation's endpoint and parameters (order of fields ignored)."""
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()

"""Stripe's error answers: ``{"error": {"type", "code", "message", "param", ...}}`` (pure).

Every refusal the fake makes is a :class:`StripeApiError`; the HTTP layer turns it into the
status, headers and JSON body Stripe would send. ``saved`` tells the idempotency layer whether
the endpoint had started executing (the answer is kept and replayed) or refused the request up
front (nothing is kept, the same key may be sent again).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DOC_BASE", "StripeApiError", "invalid", "missing_param", "resource_missing"]

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeApiError(Exception):
    """One error answer, with everything needed to render it."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        saved: bool = True,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.saved = saved
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON body, shaped like ``#/components/schemas/error``."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = DOC_BASE + self.code
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        if self.param is not None:
            error["param"] = self.param
        if request_id is not None:
            error["request_log_url"] = (
                f"https://dashboard.stripe.com/test/logs/{request_id}?t=0"
            )
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None,
            saved: bool = False) -> StripeApiError:
    """A 400 ``invalid_request_error`` (by default refused before execution: nothing saved)."""
    return StripeApiError(400, "invalid_request_error", message, code=code, param=param,
                          saved=saved)


def missing_param(param: str) -> StripeApiError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def resource_missing(kind: str, ident: str, param: str) -> StripeApiError:
    return StripeApiError(404, "invalid_request_error", f"No such {kind}: '{ident}'",
                          code="resource_missing", param=param, saved=False)

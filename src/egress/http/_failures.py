"""What an attempt's error carries: the facts (request info, replay safety), a status error's
scrubbed excerpt and headers, and the deadline's own error when the wire timed out at it."""

from __future__ import annotations

from typing import Any

from egress._clock import Clock
from egress._pipeline import CallContext
from egress.errors import (
    AttemptTimeoutError,
    DeadlineExceededError,
    EgressError,
    StatusError,
    UpstreamError,
)
from egress.events import DeadlineExceeded
from egress.http._auth import Auth
from egress.http._error_facts import error_excerpt, scrub_headers
from egress.http._headers import Headers, sanitize_response_headers
from egress.http._hints import server_hint
from egress.http._prepare import PreparedCall
from egress.http._response import Response
from egress.http._timeouts import AttemptLimits
from egress.http._wire import WireResponse

__all__ = ["AttemptErrors"]


class AttemptErrors:
    """Error facts of a client (its settings are set by ``ClientCore``)."""

    auth: Auth | None
    rate_limiter: Any
    request_id_headers: tuple[str, ...]
    clock: Clock
    _static_secrets: tuple[str, ...]

    def status_error(self, method: str, url: str, answer: WireResponse,
                     secrets: tuple[str, ...] = ()) -> StatusError:
        headers: Headers = answer.headers
        known = (*self.secret_values(), *secrets)
        plain_url = url.split("?", 1)[0]
        response = Response(answer.status, headers, answer.content, method=method, url=plain_url,
                            request_id_headers=self.request_id_headers)
        return StatusError(
            answer.status, method=method, url=plain_url, request_id=response.request_id,
            retry_after=server_hint(answer.status, headers, self.clock.wall()),
            body_excerpt=error_excerpt(answer.content, headers.get("content-type"), known),
            headers=scrub_headers(sanitize_response_headers(headers), known), response=response,
        )

    def secret_values(self) -> tuple[str, ...]:
        """The client's own secrets: its auth's and those of its ``headers=``."""
        own = self.auth.secret_values() if self.auth is not None else ()
        return (*own, *self._static_secrets)

    def failed(self, exc: EgressError, call: PreparedCall, limits: AttemptLimits,
               ctx: CallContext | None) -> EgressError:
        """Attach the facts to an attempt's error; a timeout at the deadline becomes one."""
        if isinstance(exc, UpstreamError):
            exc.request_info = call.info
            exc.replay_safe = call.info.replay_safe
            if (isinstance(exc, StatusError) and exc.status_code == 429
                    and self.rate_limiter is not None):
                if exc.retry_after is not None:
                    self.rate_limiter.cooldown(exc.retry_after)
                else:  # no hint (Stripe's usual 429): a short pause, growing while it lasts
                    self.rate_limiter.slow_down()
        if (isinstance(exc, AttemptTimeoutError) and limits.by_deadline
                and self.clock.now() >= limits.end - 1e-3):
            now = self.clock.now()
            if ctx is not None:
                ctx.sink.emit(DeadlineExceeded(operation=call.operation, at=now,
                                               budget=limits.end - limits.start, where="wire"))
            error = DeadlineExceededError(
                f"{call.operation}: deadline exceeded during attempt "
                f"{ctx.attempt if ctx is not None else 1} (sent={exc.sent})")
            error.__cause__ = exc
            return error
        return exc

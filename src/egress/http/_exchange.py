"""One attempt of a call, without I/O: the first request, a 2xx answer, and the exchange that
handles the rest (auth headers per attempt, signing, redirects, a 401 refresh, expected statuses).

The exchange is a generator: it *yields* what it needs (a :class:`WireRequest` to send, or
:class:`NeedAuth` for fresh auth headers) and *returns* the :class:`Response`; the async and sync
clients only pump it, which is how both worlds make the same decisions.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from egress._pipeline import CallContext
from egress._redacted import RedactedHeaders, RevealedStr
from egress.errors import ResponseError
from egress.events import EventSink, RedirectFollowed
from egress.http._auth import Auth, SignableRequest
from egress.http._failures import AttemptErrors
from egress.http._headers import check_header
from egress.http._prepare import PreparedCall, put_header
from egress.http._redirect import REDIRECT_STATUSES, next_hop
from egress.http._response import Response, response_of
from egress.http._timeouts import AttemptLimits, Timeouts
from egress.http._wire import WireRequest, WireResponse

__all__ = ["Exchange", "NeedAuth"]


class NeedAuth:
    """Yielded by an attempt: fresh auth headers, ``stale`` being a token the server refused."""

    __slots__ = ("stale",)

    def __init__(self, stale: str | None) -> None:
        self.stale = stale


class Exchange(AttemptErrors):
    """The attempt logic of a client (its settings are set by ``ClientCore``)."""

    auth: Auth | None
    dynamic_auth: bool
    signs: bool
    #: Nothing to compute per attempt (no OAuth2 token, no signature): send the prepared call.
    direct: bool
    follow_redirects: bool
    max_redirects: int
    base_origin: tuple[str, str, int]
    sensitive: frozenset[str]
    timeouts: Timeouts
    sink: EventSink
    _idem_lower: str

    # -- one attempt --------------------------------------------------------------------------

    def limits(self, ctx: CallContext | None) -> AttemptLimits:
        return self.timeouts.limits(self.clock.now(), None if ctx is None else ctx.deadline)

    def first_request(self, call: PreparedCall, ctx: CallContext | None) -> WireRequest:
        """The attempt's first request, carrying its limits. When :attr:`direct` (no OAuth2, no
        signing) the drivers send it as is and call :meth:`exchange` only for a non-2xx answer;
        otherwise only its limits are used."""
        limits = self.timeouts.limits(self.clock.now(), None if ctx is None else ctx.deadline)
        return WireRequest(call.method, call.url, call.headers, call.body, limits)

    def success(self, method: str, plain_url: str, answer: WireResponse) -> Response | None:
        """The :class:`Response` for a 2xx answer, else ``None``."""
        status = answer.status
        if 200 <= status < 300:
            return response_of(status, answer.headers, answer.content, method, plain_url,
                               self.request_id_headers)
        return None

    def exchange(self, call: PreparedCall, limits: AttemptLimits,
                 first: WireResponse | None = None,
                 ) -> Generator[WireRequest | NeedAuth, Any, Response]:
        """One attempt: yields what to send (or NeedAuth), receives the answers.

        ``first`` is the answer to :meth:`first_request`, when the driver already sent it.
        """
        method, url, headers, body = call.method, call.url, call.headers, call.body
        auth = self.auth
        same_origin = True
        refreshed = False
        stale: str | None = None
        hops = 0
        while True:
            sent_headers = headers
            token: str | None = None
            if same_origin and auth is not None and (self.dynamic_auth or self.signs):
                sent_headers = RedactedHeaders(headers)
                if self.dynamic_auth:
                    extra: Mapping[str, str] = yield NeedAuth(stale)
                    for name, value in extra.items():
                        check_header(name, value)
                        put_header(sent_headers, name, value)
                        if name.lower() == "authorization":
                            token = value
                if self.signs:
                    signable = SignableRequest(method, url, sent_headers, body or b"")
                    for name, value in auth.sign(signable).items():
                        check_header(name, value)
                        put_header(sent_headers, name, value)
            answer: WireResponse
            if first is not None:
                answer, first = first, None
            else:
                answer = yield WireRequest(method, url, sent_headers, body, limits)
            response = self.success(method, url.split("?", 1)[0], answer)
            if response is not None:
                return response
            status = answer.status
            if (status == 401 and not refreshed and same_origin and auth is not None
                    and auth.refreshable and token is not None):
                refreshed = True
                stale = RevealedStr(token.removeprefix("Bearer "))
                continue
            location = answer.headers.get("location") if status in REDIRECT_STATUSES else None
            if self.follow_redirects and location:
                hops += 1
                if hops > self.max_redirects:
                    raise ResponseError(f"{call.operation}: more than {self.max_redirects} "
                                        f"redirects", reason="redirect")
                method, url, headers, body, same = next_hop(
                    method, url, headers=headers, body=body, status=status, location=location,
                    base_origin=self.base_origin, sensitive=self.sensitive,
                    key_header=self._idem_lower)
                self.sink.emit(RedirectFollowed(operation=call.operation,
                                                at=self.clock.now(), status=status,
                                                cross_origin=not same))
                same_origin = same_origin and same
                continue
            if status in call.expect:  # normal for this call: a Response, never a failure
                return Response(status, answer.headers, answer.content, method=method,
                                url=url.split("?", 1)[0],
                                request_id_headers=self.request_id_headers)
            raise self.status_error(method, url, answer, call.secrets)

    def traced(self, call: PreparedCall, observed: Mapping[str, Any]) -> PreparedCall:
        """``call`` plus the headers a trace sink asked this attempt to carry (``traceparent``)."""
        extra: Mapping[str, str] | None = observed.get("headers")
        if not extra:
            return call
        headers = dict(call.headers)
        for name, value in extra.items():
            check_header(name, value)
            put_header(headers, name, value)
        return PreparedCall(call.method, call.url, headers, call.body, key=call.key,
                            operation=call.operation)

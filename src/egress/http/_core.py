"""The part of ApiClient and SyncApiClient that decides, with no I/O: one object built from the
client's :class:`~egress.http._options.ClientOptions`, in rooms of one concern each:

* ``_options``: the settings, validated; ``_tls``: the TLS context;
* ``_prepare``: a call prepared once (URL, headers, body, key, secrets);
* ``_exchange``: one attempt (auth, signing, redirects, a 401 refresh) as a generator that the
  async and sync clients only pump;
* ``_failures``: the facts an attempt's error carries;
* ``_defaults``: the pipeline a client gets when it is given none (built here, on request).
"""

from __future__ import annotations

import logging

from egress._pipeline import Pipeline
from egress.errors import ConfigurationError
from egress.events import InsecureTransport, guard
from egress.http._auth import Auth
from egress.http._exchange import Exchange, NeedAuth
from egress.http._options import ClientOptions
from egress.http._prepare import Preparation, PreparedCall
from egress.http._tls import ssl_context_source
from egress.http._wire import WireOptions

__all__ = ["ClientCore", "NeedAuth", "PreparedCall"]

_LOG = logging.getLogger("egress.http")


class ClientCore(Preparation, Exchange):
    """Validated settings plus the pure request/response logic, shared by both clients."""

    def __init__(self, base_url: str, options: ClientOptions) -> None:
        self.options = options
        self._set_defaults(base_url, options)
        auth = options.auth
        self.auth = auth
        self.retry_hook = options.retry_hook
        self.rate_limiter = options.rate_limiter
        self.timeouts = options.timeouts
        self.deadline = options.deadline
        self.max_response_bytes = options.max_response_bytes
        self.max_redirects = options.max_redirects
        self.follow_redirects = options.follow_redirects
        self.request_id_headers = options.request_id_headers
        self.clock = options.clock
        self.sink = guard(options.sink)
        self.trust_env = options.trust_env
        self.dynamic_auth = auth is not None and auth.static_headers is None and (
            type(auth).headers_async is not Auth.headers_async)
        self.signs = auth is not None and auth.signs
        self.direct = not (self.dynamic_auth or self.signs)
        tls = ssl_context_source(options.verify, options.allow_insecure, options.trust_env)
        if options.verify is False:
            self.sink.emit(InsecureTransport(operation=self.base.origin, at=self.clock.now()))
            _LOG.warning("egress.http: certificate verification is OFF for %s "
                         "(verify=False, allow_insecure=True)", self.base.origin)
        self.wire_options = WireOptions(
            clock=self.clock, tls=tls, trust_env=self.trust_env,
            max_connections=options.max_connections, keepalive_expiry=options.keepalive_expiry,
            max_response_bytes=self.max_response_bytes,
        )
        self.base_origin = (self.base.scheme, self.base.host, self.base.port)

    def pipeline(self, default: Pipeline | None) -> Pipeline:
        """``default`` (checked), or the default pipeline of this client's settings."""
        if default is not None:
            if not isinstance(default, Pipeline):
                raise ConfigurationError("pipeline must be an egress.Pipeline")
            return default
        from egress.http._defaults import default_pipeline  # the policies load on first use

        return default_pipeline(self.options, self.base.origin, self.sink)

"""The TLS context of a client: verifying by default, insecure only when acknowledged twice.

Loading a trust store parses every CA certificate in it (about 150: tens of ms, over 100 ms on
a busy machine), so the default context is built when a connection first needs it, not when a
client is made, and once per process for all clients with the same settings (an
``SSLContext`` is safe to share between connections and threads).
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
from collections.abc import Callable

from egress.errors import ConfigurationError

__all__ = ["ssl_context", "ssl_context_source"]

# What create_default_context reads from the environment (with trust_env=True only).
_ENVIRONMENT = ("SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE")


def _verifying_context(cafile: str | None, trust_env: bool) -> ssl.SSLContext:
    """A certificate- and hostname-checking context (TLS 1.2 at least).

    ``ssl.create_default_context`` lets the environment decide: ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    replace the trust store and ``SSLKEYLOGFILE`` writes session keys to a file. Without
    ``trust_env`` only the caller's CA file, or the platform's compiled-in store, is trusted.
    """
    if trust_env:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cafile is not None:
        context.load_verify_locations(cafile=cafile)
    elif sys.platform == "win32":  # the system store; OpenSSL's env paths are not used there
        context.load_default_certs()
    else:
        paths = ssl.get_default_verify_paths()  # openssl_*: compiled-in, not the environment
        if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile):
            context.load_verify_locations(cafile=paths.openssl_cafile)
        if paths.openssl_capath and os.path.isdir(paths.openssl_capath):
            context.load_verify_locations(capath=paths.openssl_capath)
    return context


@functools.cache
def _shared_default(trust_env: bool, environment: tuple[str | None, ...]) -> ssl.SSLContext:
    # ``environment`` keys the cache only: a changed SSL_CERT_FILE gets a context of its own.
    return _verifying_context(None, trust_env)


def _default_context(trust_env: bool) -> ssl.SSLContext:
    environment = tuple(os.environ.get(name) for name in _ENVIRONMENT) if trust_env else ()
    return _shared_default(trust_env, environment)


@functools.cache
def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def ssl_context_source(verify: bool | str | ssl.SSLContext, allow_insecure: bool,
                       trust_env: bool) -> Callable[[], ssl.SSLContext]:
    """What gives the context for ``verify=`` when a connection first needs one.

    Settings are checked now. The default (``verify=True``) is built on first use and shared;
    a CA file is loaded now, so that a bad one fails the client's construction.
    """
    if verify is True:
        return functools.partial(_default_context, trust_env)
    if verify is False and allow_insecure:
        return _insecure_context
    context = ssl_context(verify, allow_insecure, trust_env)  # checked (and a CA file read) now
    return lambda: context


def ssl_context(verify: bool | str | ssl.SSLContext, allow_insecure: bool,
                trust_env: bool) -> ssl.SSLContext:
    """The context for ``verify=``: ``True``, a CA file path, an ``SSLContext``, or ``False``
    (with ``allow_insecure=True``)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        return _default_context(trust_env)
    if isinstance(verify, str):
        try:
            return _verifying_context(verify, trust_env)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"verify: cannot load the CA file ({type(exc).__name__})"
                                     ) from None
    if verify is False:
        if not allow_insecure:
            raise ConfigurationError(
                "verify=False turns off certificate checks (anyone on the path can read and change "
                "the traffic); pass allow_insecure=True as well to confirm"
            )
        return _insecure_context()
    raise ConfigurationError("verify must be True, False, a CA file path or an ssl.SSLContext")

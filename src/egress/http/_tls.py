"""The TLS context of a client: verifying by default, insecure only when acknowledged twice."""

from __future__ import annotations

import os
import ssl
import sys

from egress.errors import ConfigurationError

__all__ = ["ssl_context"]


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


def ssl_context(verify: bool | str | ssl.SSLContext, allow_insecure: bool,
                trust_env: bool) -> ssl.SSLContext:
    """The context for ``verify=``: ``True``, a CA file path, an ``SSLContext``, or ``False``
    (with ``allow_insecure=True``)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is True:
        return _verifying_context(None, trust_env)
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
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    raise ConfigurationError("verify must be True, False, a CA file path or an ssl.SSLContext")

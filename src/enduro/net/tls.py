"""Client TLS contexts: one per workload (and per scrape or readiness target), built from the
plan's ``tls`` options, never one per connection.

Options, the same for every workload kind: ``ca`` (a PEM file of trusted CAs, in place of the
system's), ``verify`` (false accepts any certificate and name, as ``curl -k``), ``server_name``
(the name sent in SNI and checked against the certificate, when the URL's host is an address
or another name), ``cert`` and ``key`` (a client certificate for servers that require one; the
key may be inside ``cert``).
"""

from __future__ import annotations

import ssl

from enduro.base.errors import RunError
from enduro.plan.models import Tls

__all__ = ["client_context", "server_hostname"]


def client_context(tls: Tls) -> ssl.SSLContext:
    """A client context for ``tls``. A file that cannot be read (it was checked at validation;
    it may have changed since) is a ``RunError`` naming it."""
    try:
        ctx = ssl.create_default_context(cafile=tls.ca)
        if tls.cert is not None:
            ctx.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise RunError(f"tls: cannot load {tls.ca or ''} {tls.cert or ''} {tls.key or ''}"
                       .rstrip() + f": {exc}") from exc
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_hostname(tls: Tls, host: str) -> str:
    """The name for SNI and the certificate check: ``server_name`` or the URL's host."""
    return tls.server_name or host

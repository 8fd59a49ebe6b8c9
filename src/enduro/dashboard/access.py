"""Who may read the dashboard: the address it listens on, and the token a listener that is
not on loopback requires of every request."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from enduro.base.errors import PlanError

__all__ = ["DEFAULT_LISTEN", "Access", "Listen", "bearer", "is_loopback", "new_token",
           "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:8089"
MAX_PORT = 65535


@dataclass(frozen=True)
class Listen:
    """An address to listen on: an IP literal (``localhost`` reads as 127.0.0.1) and a port
    (0: any free port)."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def family_v6(self) -> bool:
        return ":" in self.host

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if self.family_v6 else self.host
        return f"http://{host}:{self.port if port is None else port}/"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP literal) is a loopback address: 127.0.0.0/8 or ::1."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str, flag: str = "--listen") -> Listen:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` (on 127.0.0.1); HOST an IP address or
    ``localhost``. A ``PlanError`` (a usage error, one line, naming ``flag``) says what is
    wrong."""
    where = f"{flag} {text!r}"
    raw = text.strip()
    if raw.isdigit():
        host, port_text = "127.0.0.1", raw
    elif raw.startswith("["):
        inner, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise PlanError(f"{where}: expected [IPV6]:PORT")
        host, port_text = inner, rest[1:]
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or not host:
            raise PlanError(f"{where}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
        if ":" in host:
            raise PlanError(f"{where}: write an IPv6 address in brackets, [::1]:8089")
    if host.lower() == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise PlanError(f"{where}: {host!r} is not an IP address (or localhost)") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= MAX_PORT:
        raise PlanError(f"{where}: expected a TCP port from 0 to {MAX_PORT}, got "
                        f"{port_text!r}")
    return Listen(str(address), int(port_text))


def new_token() -> str:
    """A token for a listener off loopback: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Access:
    """The checks every request passes. With a ``token`` (a listener off loopback) the request
    must carry it, as ``?token=`` or ``Authorization: Bearer``. Without one (loopback only), the
    ``Host`` header must name a loopback address or localhost: a web page the browser opened
    elsewhere cannot read the dashboard through a name it made point at 127.0.0.1 (DNS
    rebinding)."""

    token: str | None

    def allows_token(self, query: str, authorization: str | None) -> bool:
        """Whether the request carries the token (always, when none is required)."""
        if self.token is None:
            return True
        given = [*parse_qs(query, max_num_fields=64).get("token", []), bearer(authorization)]
        # compare_digest: the time taken says nothing of how much of a guess was right
        return any(g is not None and hmac.compare_digest(g.encode(), self.token.encode())
                   for g in given)

    def allows_host(self, host: str | None) -> bool:
        """Whether the ``Host`` header is acceptable (any, when a token is required)."""
        if self.token is not None:
            return True
        if not host:
            return False
        name = host.strip()
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        return name.lower() == "localhost" or is_loopback(name)

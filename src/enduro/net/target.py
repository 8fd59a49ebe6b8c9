"""Where a request goes: a base URL split once into scheme, host, port and path prefix."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from enduro.base.errors import PlanError

__all__ = ["Target", "split_base"]


@dataclass(frozen=True)
class Target:
    """Where a workload sends: scheme, host, port and path prefix."""

    scheme: str
    host: str
    port: int
    prefix: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def split_base(base: str) -> Target:
    """Split a base URL; raise ``PlanError`` on one enduro cannot use."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlanError(f"base URL {base!r}: expected http://host[:port][/prefix]")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PlanError(f"base URL {base!r}: {exc}") from exc
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

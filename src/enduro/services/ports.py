"""Ports a service will listen on, checked before it starts."""

from __future__ import annotations

import errno
import socket

import psutil

from enduro.base.errors import RunError

__all__ = ["PortBusy", "check_ports", "port_holder"]


class PortBusy(RunError):
    """A port a service needs is taken."""


def port_holder(port: int) -> str | None:
    """Who listens on ``port``: ``pid 123 (redis-server *:6379)``, or None if unknown."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return "a process enduro may not inspect"
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(proc.cmdline())[:120] or proc.name()
                return f"pid {conn.pid} ({cmd})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def _busy(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # SO_REUSEADDR: a TIME_WAIT leftover is not a holder; a listener still is.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def check_ports(service: str, ports: list[int]) -> None:
    """Raise ``PortBusy`` naming the holder when a port is taken."""
    for port in ports:
        if _busy(port):
            holder = port_holder(port)
            who = f"held by {holder}" if holder else "held by another process"
            raise PortBusy(f"service {service}: port {port} is busy, {who}; stop it or "
                           "choose another port")

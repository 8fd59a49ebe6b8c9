"""Each proxy toxic and HTTP fault measured on real loopback sockets, within tolerance."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from enduro.faults.proxy import TcpProxy
from enduro.plan.faults import HttpFault, Proxy, Toxic
from tests.helpers.procs import free_port

BULK = 200_000
BIG = 10_000_000


async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers 'ping\\n' with 'pong\\n', 'bulk\\n' with BULK bytes, and HTTP with 200."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"GET "):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            elif line == b"bulk\n":
                writer.write(b"x" * BULK)
            elif line == b"big\n":
                writer.write(b"x" * BIG)
            else:
                writer.write(b"pong\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def with_proxy(test: Callable[[TcpProxy, int], Awaitable[None]], http: bool = False) -> None:
    async def main() -> None:
        up_port, port = free_port(), free_port()
        server = await asyncio.start_server(upstream, "127.0.0.1", up_port)
        proxy = TcpProxy("p", Proxy(listen=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{up_port}",
                                    http=http), random.Random(1))
        await proxy.start()
        try:
            await asyncio.wait_for(test(proxy, port), 30)
        finally:
            await proxy.stop()
            server.close()
    asyncio.run(main())


async def ping_time(port: int, n: int = 10) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    for _ in range(n):
        writer.write(b"ping\n")
        await writer.drain()
        assert await reader.readline() == b"pong\n"
    writer.close()
    return (time.monotonic() - started) / n


def toxic(**kw: Any) -> Toxic:
    return Toxic(proxy="p", **kw)


def test_latency_adds_the_delay_per_direction() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        base = await ping_time(port)
        proxy.add_toxic(1, "latency", toxic(add=0.1))
        slow = await ping_time(port)
        assert 0.095 <= slow - base <= 0.14, (base, slow)
        proxy.add_toxic(2, "latency", toxic(add=0.05, direction="upstream"))
        slower = await ping_time(port, 5)
        assert 0.145 <= slower - base <= 0.2, (base, slower)
        proxy.remove_toxic(1)
        proxy.remove_toxic(2)
        assert await ping_time(port) < base + 0.02
    with_proxy(test)


async def big_time(port: int) -> float:
    """Seconds from asking for BIG bytes on a new connection to having read them all."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.monotonic()
        writer.write(b"big\n")
        await writer.drain()
        await reader.readexactly(BIG)
        return time.monotonic() - started
    finally:
        writer.close()


def test_latency_shifts_a_large_response_once() -> None:
    """Toxiproxy's rule: each chunk leaves ``add`` after it arrived, so 10 MB through
    ``add: 50ms`` takes the transfer time plus 50 ms, not 50 ms per 64 KB chunk (8 s)."""
    async def test(proxy: TcpProxy, port: int) -> None:
        base = statistics.median([await big_time(port) for _ in range(5)])
        proxy.add_toxic(1, "latency", toxic(add=0.05))
        slow = statistics.median([await big_time(port) for _ in range(5)])
        assert slow >= 0.05, (base, slow)
        # One delay, and room for a busy machine (a second of it): a delay per chunk would
        # add 8 s.
        assert slow - base <= 0.05 + max(1.0, 2 * base), (base, slow)
        proxy.add_toxic(2, "latency", toxic(add=0.05, direction="upstream"))
        both = statistics.median([await big_time(port) for _ in range(3)])
        assert 0.1 <= both <= base + 0.1 + max(1.0, 2 * base), (base, both)

    with_proxy(test)


def test_bandwidth_caps_the_transfer_rate() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        proxy.add_toxic(1, "bandwidth", toxic(rate=100_000))  # bytes per second
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"bulk\n")
        await reader.readexactly(BULK)
        took = time.monotonic() - started
        writer.close()
        assert 1.8 <= took <= 2.6, took  # 200 KB at 100 KB/s
    with_proxy(test)


def test_reset_peer_resets_connections() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        proxy.add_toxic(1, "reset_peer", toxic(after=0.2))
        started = time.monotonic()
        with pytest.raises(ConnectionResetError):
            while time.monotonic() - started < 5:
                writer.write(b"ping\n")
                await writer.drain()
                line = await reader.readline()
                if not line:
                    raise AssertionError("closed with a FIN, not reset")
                await asyncio.sleep(0.02)
        assert 0.15 <= time.monotonic() - started <= 1.0
    with_proxy(test)


def test_limit_data_closes_after_the_limit() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        proxy.add_toxic(1, "limit_data", toxic(bytes=50_000))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"bulk\n")
        data = await reader.read(-1)
        assert len(data) == 50_000
    with_proxy(test)


def test_blackhole_and_timeout_drop_data() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        proxy.add_toxic(1, "blackhole", toxic())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), 0.5)
        proxy.remove_toxic(1)
        proxy.add_toxic(2, "timeout", toxic(after=0.3))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"ping\n")
        assert await reader.read(-1) == b""  # nothing comes back; closed after the timeout
        assert 0.25 <= time.monotonic() - started <= 1.5
    with_proxy(test)


def test_slicer_splits_and_slow_close_delays() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        proxy.add_toxic(1, "slicer", toxic(size=10_000, delay=0.01))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"bulk\n")
        await reader.readexactly(BULK)
        assert time.monotonic() - started >= 0.15  # ~20 slices, 10 ms apart
        writer.close()
    with_proxy(test)


def test_down_refuses_until_undone() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        proxy.add_toxic(1, "down", toxic())
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            writer.write(b"ping\n")
            await writer.drain()
            if not await reader.readline():
                raise ConnectionResetError
        r2, _w2 = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises(ConnectionResetError):  # new connections are reset at once
            if not await r2.read(10):
                raise ConnectionResetError
        proxy.remove_toxic(1)
        assert await ping_time(port, 2) < 0.1
    with_proxy(test)


@pytest.mark.slow(5)
def test_toxicity_applies_to_a_share_of_connections() -> None:
    async def test(proxy: TcpProxy, port: int) -> None:
        proxy.add_toxic(1, "latency", toxic(add=0.2, toxicity=0.5))
        slow = 0
        for _ in range(40):
            if await ping_time(port, 1) > 0.1:
                slow += 1
        assert 10 <= slow <= 30
    with_proxy(test)


def test_http_faults_answer_in_the_proxy() -> None:
    async def get(port: int, n: int) -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        codes = []
        for _ in range(n):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            codes.append(int(head.split()[1]))
        writer.close()
        return codes

    async def test(proxy: TcpProxy, port: int) -> None:
        assert await get(port, 3) == [200, 200, 200]
        proxy.add_http(1, HttpFault(proxy="p", status=503, first=2))
        assert await get(port, 4) == [503, 503, 200, 200]
        proxy.remove_http(1)
        proxy.add_http(2, HttpFault(proxy="p", status=500, fraction=0.3))
        codes = await get(port, 200)
        assert 35 <= codes.count(500) <= 85 and codes.count(200) == 200 - codes.count(500)
        proxy.remove_http(2)
        proxy.add_http(3, HttpFault(proxy="p", fraction=0.0, delay=0.1))  # a delay only
        started = time.monotonic()
        assert await get(port, 3) == [200, 200, 200]
        assert time.monotonic() - started >= 0.29
    with_proxy(test, http=True)

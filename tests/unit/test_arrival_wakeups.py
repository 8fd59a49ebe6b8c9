"""The open model sleeps until the next arrival (coroutine workloads) or the next millisecond
(the http engine at high rates): no polling, no spinning."""

from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest
import uvloop

from enduro.engine.http import OpenDriver, make_driver
from enduro.engine.request import prepare_requests
from enduro.engine.schedule import ArrivalSchedule
from enduro.engine.tasks import open_arrivals
from enduro.net.target import split_base
from enduro.observe.window import Recorder
from enduro.plan.models import HttpWorkload
from tests.helpers.procs import free_port


def test_at_ten_per_second_the_loop_wakes_once_per_arrival() -> None:
    wakes = 0
    started: list[float] = []

    def sending() -> bool:
        nonlocal wakes
        wakes += 1
        return True

    async def start(intended: float) -> None:
        started.append(intended)

    async def run() -> None:
        tasks: set[asyncio.Task[None]] = set()
        end = time.monotonic() + 1.0
        await open_arrivals(ArrivalSchedule(rate=10.0), end=end, sending=sending,
                            tasks=tasks, max_concurrency=100, start=start)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    assert len(started) == 10  # t = 0, 0.1, ... 0.9
    # A wake per arrival, one at the end, and a spare: polling every 2 ms made ~500.
    assert wakes <= len(started) + 3


def test_arrivals_waiting_for_a_slot_start_when_one_frees() -> None:
    release = asyncio.Event()
    order: list[float] = []

    async def start(intended: float) -> None:
        order.append(intended)
        if len(order) == 1:
            await release.wait()

    async def run() -> None:
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        loop.call_later(0.35, release.set)
        end = time.monotonic() + 0.5
        await open_arrivals(ArrivalSchedule(rate=10.0), end=end, sending=lambda: True,
                            tasks=tasks, max_concurrency=1, start=start)
        await asyncio.gather(*tasks)

    asyncio.run(run())
    # The first holds the only slot until 0.35 s; the arrivals of 0.1-0.3 s waited, then
    # started as soon as it ended (not at the next arrival), and the last one on time.
    assert len(order) == 5
    assert order == sorted(order)


class _Ok(asyncio.Protocol):
    """A keep-alive server answering every request at once (pipelined ones too)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        n = data.count(b"\r\n\r\n")
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * n)  # type: ignore[attr-defined]


class _OnePerConnection(_Ok):
    """An HTTP/1.0 server: one answer per connection, then it closes."""

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")  # type: ignore[attr-defined]
            self.transport.close()


class _Slow(_Ok):
    """Answers each request 50 ms after it came: 1,000/s need ~50 connections."""

    def data_received(self, data: bytes) -> None:
        n = data.count(b"\r\n\r\n")
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * n
        asyncio.get_running_loop().call_later(0.05, self.transport.write, answer)  # type: ignore[attr-defined]


async def _against(protocol: type[asyncio.Protocol], rate: str, seconds: float,
                   pause_at: float | None = None, pause_s: float = 0.05
                   ) -> tuple[OpenDriver, Recorder]:
    """An open model against an in-process server; ``pause_at`` blocks the loop for
    ``pause_s`` then (the generator's own pause, as a full garbage collection)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", free_port())
    port = server.sockets[0].getsockname()[1]
    driver, recorder = _open_driver(f"http://127.0.0.1:{port}", rate)
    if pause_at is not None:
        loop.call_later(pause_at, time.sleep, pause_s)
    await driver.run(seconds)
    await driver.drain(2.0)
    server.close()
    return driver, recorder


def _open_driver(url: str, rate: str) -> tuple[OpenDriver, Recorder]:
    workload = HttpWorkload.model_validate(
        {"base": url, "rate": rate, "requests": [{"name": "get", "path": "/"}]})
    target = split_base(url)
    recorder = Recorder(["get"])
    rng = random.Random(1)
    driver = make_driver(workload, target, prepare_requests(workload, target, rng), recorder,
                         rng)
    assert isinstance(driver, OpenDriver)
    return driver, recorder


def test_at_high_rates_the_http_open_model_wakes_per_millisecond_not_per_loop_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On uvloop a timer under 0.5 ms runs at once: waking for each arrival 200 µs away made
    the loop spin (a wake, an epoll call and one request per turn). Arrivals due before the
    next wake go out with the responses read meanwhile or at that wake."""
    ticks = 0
    real = OpenDriver._tick

    def counting(self: OpenDriver) -> None:
        nonlocal ticks
        ticks += 1
        real(self)

    monkeypatch.setattr(OpenDriver, "_tick", counting)
    seconds = 1.0

    _, recorder = uvloop.run(_against(_Ok, "5000/s", seconds))
    (window,) = recorder.rotate(1)
    assert window.requests == 5000 and window.errors == 0, window
    # About one wake per millisecond at most (the loop's timer resolution); spinning made
    # several per arrival.
    assert ticks <= seconds * 1000 * 1.2, ticks


def test_a_server_answering_once_per_connection_gets_every_arrival() -> None:
    """Each request needs a new connection: a connection the server closed is replaced at
    once, whatever the pool's size."""
    _, recorder = uvloop.run(_against(_OnePerConnection, "1000/s", 1.0))
    (window,) = recorder.rotate(1)
    assert window.requests == 1000 and window.errors == 0, window


def test_a_pause_of_the_generator_leaves_the_pool_as_it_was() -> None:
    """100 ms without running leaves ~500 arrivals waiting; the open connections drain them in
    a few milliseconds, so the pool does not grow (one connection per waiting arrival made
    ~100 here, and doubling after a millisecond of lateness reached max_connections)."""
    driver, recorder = uvloop.run(_against(_Ok, "5000/s", 1.0, pause_at=0.3, pause_s=0.1))
    (window,) = recorder.rotate(1)
    assert window.requests == 5000 and window.errors == 0, window
    assert window.late > 0  # the pause was there
    assert driver.pool_cap == 8 and len(driver.conns) <= 8, (driver.pool_cap, driver.conns)


def test_a_slow_server_grows_the_pool_to_what_it_needs() -> None:
    """Answers after 50 ms at 1,000/s keep ~50 requests out: the pool of 8 doubles while
    arrivals stay late. (How far past 64 it goes depends on how busy the machine is; that a
    pause does not grow it is the test above.)"""
    driver, recorder = uvloop.run(_against(_Slow, "1000/s", 2.0))
    (window,) = recorder.rotate(1)
    assert window.requests == 2000 and window.errors == 0, window
    assert driver.pool_cap >= 64, driver.pool_cap


def test_against_a_target_that_refuses_each_arrival_fails_when_due() -> None:
    """A refused connection fails the oldest waiting arrival, so each arrival is counted as
    refused when it is due, not dropped when its timeout passes."""
    # A port bound but not listening refuses, and no other server can take it meanwhile.
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_port()))
        port = held.getsockname()[1]

        async def run() -> Recorder:
            driver, recorder = _open_driver(f"http://127.0.0.1:{port}", "2000/s")
            await driver.run(0.5)
            await driver.drain(1.0)
            return recorder

        recorder = uvloop.run(run())
    (window,) = recorder.rotate(1)
    assert window.requests == 1000, window
    assert window.classes == {"refused": window.requests}, window.classes


def test_the_open_model_sends_per_millisecond_while_its_cpu_is_busy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 80% of a core the arrivals of each millisecond go out together; below 50% each
    response sends the arrivals due at once again."""
    cpu = [0.0]
    monkeypatch.setattr("enduro.engine.http.time.process_time", lambda: cpu[0])

    async def run() -> list[bool]:
        driver, _ = _open_driver("http://127.0.0.1:9", "10/s")
        driver._cpu_at = (0.0, 0.0)
        seen = [driver.prompt]
        for now, used in ((1.0, 0.9), (2.0, 1.6), (3.0, 2.0), (4.0, 2.6)):
            cpu[0] = used
            driver._measure(now)
            seen.append(driver.prompt)
        return seen

    # 90% busy: per millisecond; 70%: stays so; 40%: prompt; 60%: stays prompt.
    assert uvloop.run(run()) == [True, False, False, True, True]


def test_the_starting_pool_is_open_before_the_first_arrival(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrivals at the start find open connections: waiting for handshakes made the first
    arrivals late and grew the pool for a wait that was only the connect."""
    at_first_send: list[int] = []
    real = OpenDriver.dispatch

    def recording(self: OpenDriver, conn: object, intended: float, now: float) -> bool:
        if not at_first_send:
            at_first_send.append(len(self.conns))
        return real(self, conn, intended, now)  # type: ignore[arg-type]

    monkeypatch.setattr(OpenDriver, "dispatch", recording)
    _, recorder = uvloop.run(_against(_Ok, "20000/s", 0.2))
    (window,) = recorder.rotate(1)
    assert window.requests == 4000 and window.errors == 0, window
    # A millisecond of arrivals at 20,000/s: 20 connections, all open at the first send.
    assert at_first_send == [20], at_first_send


def test_a_saturated_generator_does_not_grow_its_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrivals that wait because the generator's CPU is full are not helped by more
    connections (each adds work): the pool grows only while the CPU has room."""
    cpu = [0.0]
    monkeypatch.setattr("enduro.engine.http.time.process_time", lambda: cpu[0])

    async def run() -> tuple[int, int]:
        driver, _ = _open_driver("http://127.0.0.1:9", "20000/s")
        driver._cpu_at = (0.0, 0.0)
        cpu[0] = 0.95
        driver._measure(1.0)
        assert driver.saturated
        cap = driver.pool_cap
        driver.conns = {object() for _ in range(cap)}  # type: ignore[misc]
        driver.backlog.extend([0.0] * 100)
        driver.open_connection = lambda: None  # type: ignore[method-assign]
        driver._flush(0.5)
        saturated_cap = driver.pool_cap
        driver.saturated = False
        driver._flush(0.9)
        return saturated_cap, driver.pool_cap // cap

    assert uvloop.run(run()) == (20, 2)

"""The watchdog: a thread that ends a run when its event loop cannot.

The run arms a deadline for each stretch of its life (the load, the final phase, the
teardown, writing the results) and notes every signal. When a deadline passes, the watchdog
first asks the loop to stop at once (``on_overrun``, called in the loop's thread). A loop that
does not take that call within ``stall_s`` seconds is blocked (user code that sleeps or spins
on it), and so is one that takes it but then overruns again: then the watchdog ends the run
itself, from its own thread (``emergency``: undo the faults, stop the processes, write the
results), and exits the process with the code ``emergency`` returns. A signal the loop has not
answered within ``stall_s``, or a second one, ends the run the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

import psutil

__all__ = ["Watchdog", "end_children"]


def end_children(grace_s: float) -> list[int]:
    """Stop every process this one started, and what they started: SIGTERM to each (to its
    whole group when it leads one, as services, builds and fault commands do), SIGKILL to
    what is left after ``grace_s``. Returns the pids that were found."""
    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []

    def send(proc: psutil.Process, sig: int) -> None:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    for proc in procs:
        send(proc, signal.SIGTERM)
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(signal.SIGCONT)  # a paused service cannot act on SIGTERM
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        send(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=2.0)
    return [p.pid for p in procs]


class Watchdog:
    """Deadlines for a run, watched from a thread of their own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, on_overrun: Callable[[str], None],
                 emergency: Callable[[str], int],
                 exit: Callable[[int], None] = os._exit,
                 stall_s: float = 3.0, poll_s: float = 0.1) -> None:
        self._loop = loop
        self._on_overrun = on_overrun
        self._emergency = emergency
        self._exit = exit
        self.stall_s = stall_s
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = ""
        self._asked_at: float | None = None  # when the loop was asked to stop at once
        self._forced = False  # the loop took that request: the next overrun is the last
        self._signal_at: float | None = None  # a signal the loop has not answered yet
        self._unanswered = 0
        self._patient = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="enduro-watchdog", daemon=True)

    # -- from the loop's thread ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The run ended by itself: stand down."""
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def arm(self, seconds: float | None, what: str, *, patient: bool = False) -> None:
        """The current stretch of the run must be over within ``seconds`` (None: no bound of
        its own, such as a readiness wait bounded by its timeout). ``patient``: the stretch
        may hold the loop (writing results); a signal does not end it early."""
        with self._lock:
            self._deadline = None if seconds is None else time.monotonic() + seconds
            self._what = what
            self._patient = patient

    def tighten(self, seconds: float, what: str) -> None:
        """Like ``arm``, unless the deadline already armed comes sooner."""
        at = time.monotonic() + seconds
        with self._lock:
            if self._deadline is None or at < self._deadline:
                self._deadline = at
                self._what = what

    def answered_signal(self) -> None:
        """The loop has taken the last signal."""
        with self._lock:
            self._signal_at = None
            self._unanswered = 0

    # -- from a signal handler ----------------------------------------------------------
    def noted_signal(self) -> None:
        """A signal arrived (the handler runs in the main thread even while the loop is
        blocked)."""
        with self._lock:
            self._unanswered += 1
            if self._signal_at is None:
                self._signal_at = time.monotonic()

    # -- the thread ---------------------------------------------------------------------
    def _took_request(self) -> None:
        with self._lock:
            self._forced = True
            self._asked_at = None

    def _watch(self) -> None:
        while not self._done.wait(self._poll_s):
            why = self._check(time.monotonic())
            if why is not None:
                self._end(why)
                return

    def _check(self, now: float) -> str | None:
        """Why the run must end now, from this thread; None while all is well."""
        with self._lock:
            if self._signal_at is not None and not self._patient:
                if self._unanswered >= 2:
                    return "a second signal while the event loop did not answer the first"
                if now - self._signal_at > self.stall_s:
                    return (f"a signal the event loop did not answer within "
                            f"{self.stall_s:g}s (it is blocked)")
            if self._asked_at is not None and now - self._asked_at > self.stall_s:
                return (f"{self._what} overran its deadline and the event loop did not "
                        f"answer within {self.stall_s:g}s (it is blocked)")
            if self._deadline is None or now < self._deadline:
                return None
            what = self._what
            if self._forced:
                return f"{what} overran its deadline again after a forced stop"
            self._deadline = None
            self._asked_at = now
        try:
            self._loop.call_soon_threadsafe(self._overrun, what)
        except RuntimeError:  # the loop is closed: nothing else will end the run
            return f"{what} overran its deadline after the event loop closed"
        return None

    def _overrun(self, what: str) -> None:
        self._took_request()
        self._on_overrun(what)

    def _end(self, why: str) -> None:
        if self._done.is_set():
            return
        code = self._emergency(why)
        self._exit(code)

"""Where sealed windows' bookkeeping runs: one writer thread, in the order it was handed in,
or the calling thread."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable

__all__ = ["SealJobs", "SealWriter"]


class SealWriter:
    """One daemon thread running sealed windows' bookkeeping in the order it was handed in.
    The first error is kept for ``flush`` (the run reports it); later windows still run."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._pending = 0
        self._cv = threading.Condition()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="enduro-seal", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._cv:
            self._pending += 1
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException as exc:  # kept for flush: the run says it, then goes on
                if self.error is None:
                    self.error = exc
            finally:
                del job  # its windows' histograms can go back to the recorder's pool
                with self._cv:
                    self._pending -= 1
                    if not self._pending:
                        self._cv.notify_all()

    def flush(self, timeout: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float) -> None:
        self.flush(timeout)
        self._jobs.put(None)
        self._thread.join(timeout)



class SealJobs:
    """Runs sealed windows' bookkeeping on a writer thread: always (``background`` True),
    never (False), or when sealing runs on an event loop (None)."""

    def __init__(self, background: bool | None) -> None:
        self.background = background
        self._writer: SealWriter | None = None

    def deferred(self) -> bool:
        if self.background is not None:
            return self.background
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the writer thread (after the jobs before it), or here."""
        if self.deferred():
            if self._writer is None:
                self._writer = SealWriter()
            self._writer.submit(job)
        else:
            job()


    def flush(self, timeout: float) -> BaseException | None:
        """Wait until every job handed in is done; the first error it met since the last
        flush, if any."""
        writer = self._writer
        if writer is None:
            return None
        writer.flush(timeout)
        error, writer.error = writer.error, None
        return error

    def close(self, timeout: float) -> BaseException | None:
        """``flush``, then end the writer thread."""
        error = self.flush(timeout)
        if self._writer is not None:
            self._writer.close(timeout)
            self._writer = None
        return error

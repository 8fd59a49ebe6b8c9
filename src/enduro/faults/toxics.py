"""The proxy's toxics on a connection's data: which connections each applies to, the delay
of the latency toxics, and what the others do to a chunk (drop, pace, slice, cut)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass

from enduro.faults.proxy_links import Link
from enduro.plan.faults import Toxic

__all__ = ["ToxicState", "Toxics"]


@dataclass
class ToxicState:
    """An active toxic: the fault that added it, its kind and its settings."""

    id: int
    kind: str
    spec: Toxic


class Toxics:
    """The toxics active on one proxy, by fault id, and their effects."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.active: dict[int, ToxicState] = {}

    def applies(self, link: Link, toxic: ToxicState, direction: str) -> bool:
        """Whether ``toxic`` acts on ``link`` in ``direction``: drawn once per connection,
        with probability ``toxicity``."""
        if toxic.spec.direction not in (direction, "both"):
            return False
        chosen = link.chosen.get(toxic.id)
        if chosen is None:
            chosen = link.chosen[toxic.id] = self.rng.random() < toxic.spec.toxicity
        return chosen

    def arm(self, link: Link, toxic: ToxicState) -> None:
        """Connection-level toxics: a reset or a timeout close after ``after`` seconds."""
        if not (self.applies(link, toxic, "downstream") or
                self.applies(link, toxic, "upstream")):
            return
        if toxic.kind == "timeout" and toxic.spec.after <= 0:
            return  # hold the data forever
        loop = asyncio.get_running_loop()
        reset = toxic.kind == "reset_peer"
        link.timers.append(loop.call_later(toxic.spec.after, link.close, reset))

    async def delay(self, link: Link, direction: str, arrived: float) -> None:
        """Wait until the latency toxics' delay has passed since ``arrived``."""
        delay = 0.0
        for toxic in list(self.active.values()):
            if toxic.kind == "latency" and self.applies(link, toxic, direction):
                spec = toxic.spec
                jitter = self.rng.uniform(-spec.jitter, spec.jitter) if spec.jitter else 0.0
                delay += max(0.0, spec.add + jitter)
        if delay > 0:
            wait = arrived + delay - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)

    async def forward(self, data: bytes, writer: asyncio.StreamWriter, direction: str,
                       link: Link, sent: int, arrived: float | None = None) -> int:
        await self.delay(link, direction,
                          asyncio.get_running_loop().time() if arrived is None else arrived)
        slices: list[bytes] = [data]
        pace = 0.0
        slice_delay = 0.0
        for toxic in list(self.active.values()):
            if not self.applies(link, toxic, direction):
                continue
            spec = toxic.spec
            kind = toxic.kind
            if kind in ("blackhole", "timeout"):
                return sent  # dropped
            elif kind == "bandwidth" and spec.rate > 0:
                pace = float(spec.rate)
            elif kind == "slicer" and spec.size > 0:
                size = spec.size
                out = []
                pos = 0
                while pos < len(data):
                    var = self.rng.randint(-spec.size_variation, spec.size_variation) \
                        if spec.size_variation else 0
                    step = max(1, size + var)
                    out.append(data[pos:pos + step])
                    pos += step
                slices = out
                slice_delay = spec.delay
            elif kind == "limit_data" and spec.bytes > 0 and sent + len(data) >= spec.bytes:
                writer.write(data[: max(0, spec.bytes - sent)])
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.drain()
                link.close()
                return spec.bytes
        for i, piece in enumerate(slices):
            if pace:
                # Paced in chunks of at most 1/10 s of the allowed rate.
                step = max(1, int(pace / 10))
                for pos in range(0, len(piece), step):
                    chunk = piece[pos:pos + step]
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(len(chunk) / pace)
            else:
                writer.write(piece)
                await writer.drain()
            if slice_delay and i < len(slices) - 1:
                await asyncio.sleep(slice_delay)
        return sent + len(data)

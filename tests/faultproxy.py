"""A TCP proxy that injects network faults, for tests: what ``tc netem`` would do.

This machine's kernel has no netem, so faults are made in user space. The proxy
listens on loopback, dials the target for every connection it accepts and pumps
bytes both ways; each direction has its own ``Faults``: upstream is client to
target, downstream is target to client.

Theory of operation: each direction of each connection is one ``_Pipe``, a reader
task and a writer task around a bounded queue. The reader takes a chunk from the
sender and applies the faults that fire at a byte offset (corrupt, blackhole, cut):
offsets count that direction's stream on that connection, so they fire at exactly
the same byte however TCP chunked the data. What survives is queued with the moment
it is due (now + delay ± jitter from a seeded RNG, never before the chunk ahead of
it, since TCP keeps order). The writer sleeps until each chunk is due and writes it,
whole or one byte at a time. A cut travels through the same queue, so it lands
right after the bytes before it were delivered. The queue is bounded: a receiver
that does not read stalls the reader too, as a real link would.

Ends: an EOF from one side becomes a half-close on the other, and the connection is
closed when both directions ended. A blackholed direction swallows everything,
EOF included, as a dead link does, so the other side never learns the peer left.
A cut closes both sides at once (FIN, or RST with ``reset=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import socket
import struct
from dataclasses import dataclass
from types import TracebackType

__all__ = ["Counters", "FaultProxy", "Faults"]

CHUNK = 64 * 1024
QUEUE_CHUNKS = 16
"""Chunks in flight per direction before the proxy stops reading (backpressure)."""
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Faults:
    """What one direction of every connection suffers; the default is a clean link.

    ``delay``/``jitter``: seconds added to each chunk's delivery (uniform ± jitter,
    from ``random.Random`` seeded with ``seed``, the connection number and the
    direction). ``cut_after``: deliver that many bytes, then close both sides.
    ``blackhole_after``: deliver that many bytes, then swallow everything while the
    connection stays open. ``one_byte_at_a_time``: every byte is its own write,
    ``byte_interval`` seconds apart. ``corrupt_at``: XOR the byte at that offset
    with ``corrupt_xor``. Raises ValueError for values that make no sense.
    """

    delay: float = 0.0
    jitter: float = 0.0
    cut_after: int | None = None
    reset: bool = False
    blackhole_after: int | None = None
    one_byte_at_a_time: bool = False
    byte_interval: float = 0.0
    corrupt_at: int | None = None
    corrupt_xor: int = 0xFF
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.delay, self.jitter, self.byte_interval) < 0:
            raise ValueError("delay, jitter and byte_interval must not be negative")
        for name in ("cut_after", "blackhole_after", "corrupt_at"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")
        if self.cut_after is not None and self.blackhole_after is not None:
            raise ValueError("cut_after and blackhole_after exclude each other")
        if not 0 < self.corrupt_xor < 256:
            raise ValueError("corrupt_xor must be 1..255 (0 would change nothing)")

    @property
    def limit(self) -> int | None:
        """Bytes that get through before a cut or a blackhole, if either is set."""
        return self.cut_after if self.cut_after is not None else self.blackhole_after


@dataclass(slots=True)
class Counters:
    """One direction, summed over every connection the proxy carried."""

    received: int = 0
    """Bytes read from the sender."""
    forwarded: int = 0
    """Bytes written to the receiver."""
    dropped: int = 0
    """Bytes swallowed by a blackhole or left behind by a cut."""
    corrupted: int = 0
    cuts: int = 0
    blackholes: int = 0
    """Connections on which the blackhole started."""


class _Mark(enum.Enum):
    EOF = "eof"
    CUT = "cut"


class _Cut(Exception):
    """Raised inside a connection's task group to end every pump at once."""


_Item = bytes | _Mark


class _Pipe:
    """One direction of one connection: reader -> (due, item) queue -> writer."""

    def __init__(
        self,
        faults: Faults,
        counters: Counters,
        rng: random.Random,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
    ) -> None:
        self.faults = faults
        self.counters = counters
        self.rng = rng
        self.src = src
        self.dst = dst
        self.offset = 0
        self.blackholed = False
        self.cut = False
        self._queue: asyncio.Queue[tuple[float, _Item]] = asyncio.Queue(QUEUE_CHUNKS)
        self._last_due = 0.0

    async def run(self) -> None:
        """Pump until EOF or a cut. Raises _Cut, ConnectionError, OSError."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read_loop())
            group.create_task(self._write_loop())

    # ---- reading side ------------------------------------------------------------

    async def _read_loop(self) -> None:
        if self.faults.cut_after == 0:
            await self._put(_Mark.CUT)
            return
        self.blackholed = self.faults.blackhole_after == 0
        self.counters.blackholes += self.blackholed
        while not self.cut:
            chunk = await self.src.read(CHUNK)
            if not chunk:
                if not self.blackholed:  # a dead link does not carry the FIN either
                    await self._put(_Mark.EOF)
                return
            for item in self._shape(chunk):
                await self._put(item)

    def _shape(self, chunk: bytes) -> list[_Item]:
        """Apply the offset faults to the next chunk; return what to queue."""
        start, self.offset = self.offset, self.offset + len(chunk)
        self.counters.received += len(chunk)
        chunk = self._corrupt(start, chunk)
        if self.blackholed:
            self.counters.dropped += len(chunk)
            return []
        limit = self.faults.limit
        if limit is None or self.offset < limit:
            return [chunk]
        keep = limit - start
        self.counters.dropped += len(chunk) - keep
        items: list[_Item] = [chunk[:keep]] if keep else []
        if self.faults.cut_after is not None:
            self.cut = True
            items.append(_Mark.CUT)
        else:
            self.blackholed = True
            self.counters.blackholes += 1
        return items

    def _corrupt(self, start: int, chunk: bytes) -> bytes:
        at = self.faults.corrupt_at
        if at is None or not start <= at < start + len(chunk):
            return chunk
        i = at - start
        self.counters.corrupted += 1
        return chunk[:i] + bytes([chunk[i] ^ self.faults.corrupt_xor]) + chunk[i + 1 :]

    async def _put(self, item: _Item) -> None:
        now = asyncio.get_running_loop().time()
        lag = self.faults.delay + self.rng.uniform(-self.faults.jitter, self.faults.jitter)
        due = max(self._last_due, now + max(lag, 0.0))
        self._last_due = due
        await self._queue.put((due, item))

    # ---- writing side ------------------------------------------------------------

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, item = await self._queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if item is _Mark.CUT:
                self.counters.cuts += 1
                raise _Cut
            if item is _Mark.EOF:
                if self.dst.can_write_eof():
                    self.dst.write_eof()
                return
            await self._deliver(item)

    async def _deliver(self, data: bytes) -> None:
        if not self.faults.one_byte_at_a_time:
            self.dst.write(data)
            await self.dst.drain()
            self.counters.forwarded += len(data)
            return
        for i in range(len(data)):
            self.dst.write(data[i : i + 1])
            await self.dst.drain()
            self.counters.forwarded += 1
            await asyncio.sleep(self.faults.byte_interval)


class FaultProxy:
    """Listen on ``host`` (loopback), forward each connection to the target.

    Use as ``async with FaultProxy(host, port, upstream=..., downstream=...) as p``;
    dial ``p.address``. ``upstream``/``downstream`` may be replaced between
    connections (a retry without the fault); each connection uses the values it
    was accepted with. Leaving the block hangs up every connection.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        upstream: Faults | None = None,
        downstream: Faults | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.target = (target_host, target_port)
        self.upstream = upstream or Faults()
        self.downstream = downstream or Faults()
        self.host = host
        self.up = Counters()
        self.down = Counters()
        self.accepted = 0
        self.failed_connects = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the proxy is not running: use it in `async with`")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def bytes_up(self) -> int:
        return self.up.forwarded

    @property
    def bytes_down(self) -> int:
        return self.down.forwarded

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening and hang up every connection (abort, no goodbye)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task, not asyncio's callback task: Python 3.11 logs a spurious
        # error when the server's callback task is cancelled on close.
        task = asyncio.create_task(self._serve(self.accepted, reader, writer))
        self.accepted += 1
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up, down = self.upstream, self.downstream
        try:
            target = await asyncio.wait_for(asyncio.open_connection(*self.target), CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            self.failed_connects += 1
            writer.transport.abort()
            return
        await self._carry(index, (reader, writer), target, up, down)

    async def _carry(
        self,
        index: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        up: Faults,
        down: Faults,
    ) -> None:
        writers = (client[1], target[1])
        self._writers.update(writers)
        pipes = (
            _Pipe(up, self.up, _rng(up, index, "up"), client[0], target[1]),
            _Pipe(down, self.down, _rng(down, index, "down"), target[0], client[1]),
        )
        reset = False
        try:
            async with asyncio.TaskGroup() as group:
                for pipe in pipes:
                    group.create_task(pipe.run())
        except* _Cut:
            reset = any(p.cut and p.faults.reset for p in pipes)
        except* (ConnectionError, OSError):
            pass  # one side hung up hard: hang up the other too
        finally:
            for writer in writers:
                _hang_up(writer, reset=reset)
                self._writers.discard(writer)


def _rng(faults: Faults, index: int, direction: str) -> random.Random:
    """Jitter for one direction of one connection: reproducible from the seed."""
    return random.Random(f"{faults.seed}/{index}/{direction}")


def _hang_up(writer: asyncio.StreamWriter, *, reset: bool) -> None:
    """Close now; with ``reset`` the peer gets an RST instead of a FIN."""
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
    else:
        writer.close()

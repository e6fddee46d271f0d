"""The fault proxy itself, against a trivial echo server on loopback.

Each fault is checked at the byte where it must fire and no other, so that the
functional tests built on it (tests/functional/test_faults.py) test the product,
not the proxy.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest

from tests.faultproxy import FaultProxy, Faults

QUIET = 0.3
"""How long "nothing arrives" is watched for."""
STEP = 5.0
"""Upper bound for anything that should take milliseconds."""


class EchoServer:
    """Echoes every byte; records each read's size and everything it got."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.reads: list[int] = []
        self.eof = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.reads.append(len(data))
                self.received += data
                writer.write(data)
                await writer.drain()
            self.eof.set()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    await server.close()


async def dial(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*proxy.address), STEP)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), STEP)


async def round_trip(proxy: FaultProxy, data: bytes) -> bytes:
    reader, writer = await dial(proxy)
    writer.write(data)
    writer.write_eof()
    try:
        return await read_all(reader)
    finally:
        writer.close()


async def nothing_arrives(reader: asyncio.StreamReader) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), QUIET)


# ---- a clean link -------------------------------------------------------------------


async def test_clean_link_forwards_both_ways_and_counts(echo: EchoServer) -> None:
    data = os.urandom(300_000)
    async with FaultProxy("127.0.0.1", echo.port) as proxy:
        assert await round_trip(proxy, data) == data
        assert echo.eof.is_set()
    assert proxy.bytes_up == proxy.bytes_down == len(data)
    assert (proxy.up.received, proxy.down.received) == (len(data), len(data))
    assert proxy.accepted == 1 and proxy.failed_connects == 0


# ---- delay and jitter ---------------------------------------------------------------


async def test_delay_applies_to_each_direction(echo: EchoServer) -> None:
    faults = Faults(delay=0.05)
    async with FaultProxy("127.0.0.1", echo.port, upstream=faults, downstream=faults) as proxy:
        reader, writer = await dial(proxy)
        for _ in range(3):
            started = time.monotonic()
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), STEP) == b"ping"
            assert time.monotonic() - started >= 0.1
        writer.close()


async def test_jitter_never_reorders_bytes(echo: EchoServer) -> None:
    faults = Faults(delay=0.01, jitter=0.01, seed=7)
    sent = b"".join(b"%04d" % i for i in range(200))
    async with FaultProxy("127.0.0.1", echo.port, upstream=faults, downstream=faults) as proxy:
        reader, writer = await dial(proxy)
        for i in range(0, len(sent), 4):  # many small chunks, each with its own lag
            writer.write(sent[i : i + 4])
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write_eof()
        assert await read_all(reader) == sent
        writer.close()


# ---- cuts ---------------------------------------------------------------------------


async def test_upstream_cut_delivers_exactly_n_bytes_then_closes(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port, upstream=Faults(cut_after=1000)) as proxy:
        reader, writer = await dial(proxy)
        writer.write(os.urandom(1500))
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(os.urandom(5000))  # the second write crosses the limit
        echoed = await read_all(reader)
        writer.close()
        await asyncio.wait_for(echo.eof.wait(), STEP)
    assert len(echo.received) == 1000
    assert len(echoed) <= 1000
    assert proxy.up.cuts == 1 and proxy.up.forwarded == 1000


async def test_downstream_cut_delivers_exactly_n_bytes(echo: EchoServer) -> None:
    data = os.urandom(100_000)
    async with FaultProxy("127.0.0.1", echo.port, downstream=Faults(cut_after=12_345)) as proxy:
        reader, writer = await dial(proxy)
        writer.write(data)
        assert await read_all(reader) == data[:12_345]
        writer.close()
    assert proxy.down.cuts == 1 and proxy.bytes_down == 12_345


async def test_cut_at_zero_hangs_up_before_any_byte(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port, upstream=Faults(cut_after=0)) as proxy:
        assert await round_trip(proxy, b"hello") == b""
    assert echo.received == b"" and proxy.up.cuts == 1


async def test_cut_with_reset_gives_connection_reset(echo: EchoServer) -> None:
    faults = Faults(cut_after=10, reset=True)
    async with FaultProxy("127.0.0.1", echo.port, downstream=faults) as proxy:
        reader, writer = await dial(proxy)
        writer.write(os.urandom(1000))
        with pytest.raises(ConnectionResetError):
            while await asyncio.wait_for(reader.read(65536), STEP):
                pass
        writer.close()


# ---- blackholes ---------------------------------------------------------------------


async def test_blackhole_swallows_after_n_bytes_and_keeps_the_connection_open(
    echo: EchoServer,
) -> None:
    async with FaultProxy("127.0.0.1", echo.port, downstream=Faults(blackhole_after=5)) as proxy:
        reader, writer = await dial(proxy)
        writer.write(b"0123456789")
        assert await asyncio.wait_for(reader.readexactly(5), STEP) == b"01234"
        await nothing_arrives(reader)
        writer.write_eof()  # the server sees it and hangs up; that FIN is swallowed too
        await asyncio.wait_for(echo.eof.wait(), STEP)
        await nothing_arrives(reader)
        assert not reader.at_eof()
        writer.close()
    assert echo.received == b"0123456789"
    assert proxy.down.blackholes == 1 and proxy.down.dropped == 5


async def test_blackhole_from_the_start_accepts_everything_and_forwards_nothing(
    echo: EchoServer,
) -> None:
    async with FaultProxy("127.0.0.1", echo.port, upstream=Faults(blackhole_after=0)) as proxy:
        reader, writer = await dial(proxy)
        for _ in range(20):  # far more than any socket buffer: the proxy keeps reading
            writer.write(os.urandom(65536))
            await asyncio.wait_for(writer.drain(), STEP)
        await nothing_arrives(reader)
        writer.close()
    assert echo.received == b"" and proxy.up.dropped == 20 * 65536


async def test_closing_the_proxy_hangs_up_held_connections(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port, downstream=Faults(blackhole_after=0)) as proxy:
        reader, writer = await dial(proxy)
        writer.write(b"x")
        await nothing_arrives(reader)
    assert await read_all(reader) == b""
    writer.close()


# ---- one byte at a time, corruption -------------------------------------------------


async def test_one_byte_at_a_time(echo: EchoServer) -> None:
    faults = Faults(one_byte_at_a_time=True, byte_interval=0.01)
    async with FaultProxy("127.0.0.1", echo.port, upstream=faults) as proxy:
        assert await round_trip(proxy, b"abcdefghij") == b"abcdefghij"
    assert echo.reads == [1] * 10


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
async def test_corrupts_exactly_one_byte_at_the_offset(echo: EchoServer, direction: str) -> None:
    faults = Faults(corrupt_at=7, corrupt_xor=0x01)
    up, down = (faults, None) if direction == "upstream" else (None, faults)
    async with FaultProxy("127.0.0.1", echo.port, upstream=up, downstream=down) as proxy:
        reader, writer = await dial(proxy)
        writer.write(b"\x00" * 5)  # the offset counts across chunks
        await asyncio.wait_for(reader.readexactly(5), STEP)
        writer.write(b"\x00" * 5)
        writer.write_eof()
        assert await read_all(reader) == b"\x00\x00\x01\x00\x00"
        writer.close()
    counters = proxy.up if direction == "upstream" else proxy.down
    assert counters.corrupted == 1


# ---- per connection -----------------------------------------------------------------


async def test_faults_apply_per_connection_and_can_be_lifted(echo: EchoServer) -> None:
    async with FaultProxy("127.0.0.1", echo.port, downstream=Faults(cut_after=3)) as proxy:
        assert await round_trip(proxy, b"abcdef") == b"abc"
        assert await round_trip(proxy, b"abcdef") == b"abc"  # each connection counts anew
        proxy.downstream = Faults()
        assert await round_trip(proxy, b"abcdef") == b"abcdef"
    assert proxy.accepted == 3 and proxy.down.cuts == 2


async def test_unreachable_target_hangs_up_the_client() -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    async with FaultProxy("127.0.0.1", port) as proxy:
        reader, writer = await dial(proxy)
        assert await read_all(reader) == b""
        writer.close()
    assert proxy.failed_connects == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay": -1.0},
        {"jitter": -0.1},
        {"cut_after": -1},
        {"corrupt_at": -5},
        {"corrupt_xor": 0},
        {"cut_after": 5, "blackhole_after": 5},
    ],
)
def test_faults_refuse_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Faults(**kwargs)  # type: ignore[arg-type]

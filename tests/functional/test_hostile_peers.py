"""Hostile peers against a real ``p2pcrew serve`` process, over real loopback sockets.

The attackers run in the test process on asyncio and use the real transport
(``client_handshake``, ``SecureStream``) and RPC machine (``RpcConnection``), so what
they send is exactly what a modified p2pcrew could send. Each test checks what the
victim does (hang up, keep only what is valid, how fast) and that it goes on serving
honest peers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate import messages as m
from p2pcrew.replicate import rpc_states as ev
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import HANDSHAKE_TIMEOUT, Node
from p2pcrew.replicate.rpc import RpcConnection
from p2pcrew.replicate.rpc_errors import RpcProtocolError
from p2pcrew.replicate.secure_stream import SecureStream, client_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY, ClientHandshake
from p2pcrew.replicate.transport_errors import BadNetworkKey, TransportError
from tests.functional.procs import Crew, Peer, ServeProcess, async_wait_until, signed_chain

PROMPT = 3.0
"""A victim that must hang up "at once" has this long (it needs milliseconds)."""
SLOWLORIS_LIMIT = 15.0
"""The handshake timeout is 10 s; allow scheduling slack on a busy machine."""


@pytest.fixture
def crew(tmp_path: Path) -> Iterator[Crew]:
    with Crew(tmp_path) as processes:
        yield processes


# ---- the attacker's tools -------------------------------------------------------


async def open_tcp(address: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(address.host, address.port), 5.0)


async def handshake(
    address: Address, identity: Identity
) -> tuple[SecureStream, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await open_tcp(address)
    stream = await client_handshake(
        reader, writer, P2PCREW_NETWORK_KEY, identity.signing_key, address.key, timeout=5.0
    )
    return stream, reader, writer


async def seconds_until_hung_up(reader: asyncio.StreamReader, limit: float) -> float:
    """Read raw bytes, discarding them, until the victim closes; return the time taken."""
    start = time.monotonic()
    async with asyncio.timeout(limit):
        while True:
            try:
                if not await reader.read(65536):
                    break
            except ConnectionError:
                break
    return time.monotonic() - start


class ReplicationClient:
    """Speaks the real replication protocol on one ``replicate`` stream, as the dialler."""

    def __init__(self, stream: SecureStream) -> None:
        self.stream = stream
        self.rpc = RpcConnection(client=True)
        self.sid = self.rpc.open_stream("replicate", {"version": 1})
        self.errors: list[tuple[str, str]] = []
        self._inbox: deque[m.Message] = deque()

    async def send(self, message: m.Message) -> None:
        self.rpc.send_data(self.sid, m.encode_message(message))
        await self._flush()

    async def receive(self, timeout: float = 5.0) -> m.Message:
        async with asyncio.timeout(timeout):
            while not self._inbox:
                self._handle(self.rpc.receive_data(await self.stream.read()))
                await self._flush()
        return self._inbox.popleft()

    async def until_hung_up(self, timeout: float) -> BaseException | None:
        """Keep reading until the victim ends the connection; return how it ended."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data = await self.stream.read()
                    self._handle(self.rpc.receive_data(data))
                except (TransportError, RpcProtocolError, OSError) as exc:
                    return exc
                if not data:
                    return None

    def _handle(self, events: list[ev.RpcEvent]) -> None:
        for event in events:
            match event:
                case ev.DataReceived(sid, body, flow) if sid == self.sid:
                    self._inbox.append(m.decode_message(body))
                    self.rpc.consume(sid, flow)
                case ev.ErrorReceived(_sid, reason, message):
                    self.errors.append((reason, message))
                case _:
                    pass

    async def _flush(self) -> None:
        data = self.rpc.data_to_send()
        if data:
            self.stream.write(data)
            await self.stream.drain()


async def honest_sync_works(crew: Crew, victim: ServeProcess, name: str) -> None:
    """The victim still serves an ordinary peer, and its process is alive."""
    honest = crew.peer(name)
    await asyncio.to_thread(honest.run, "sync", victim.address)
    assert victim.proc.poll() is None


def start_victim(crew: Crew) -> tuple[Peer, ServeProcess]:
    victim = crew.peer("victim")
    victim.posts(3, "victim")
    return victim, victim.serve()


# ---- a. a forged signature in the middle of a batch ------------------------------


async def test_forged_signature_keeps_valid_prefix_and_drops_peer(crew: Crew) -> None:
    x = Identity.generate()
    victim = crew.peer("victim")
    victim.run("follow", x.feed_id)
    served = victim.serve()
    chain = signed_chain(x, 9)
    forged = bytearray(chain[5][0].header)
    forged[-10] ^= 0x01  # a signature byte of seq 6
    items: list[tuple[bytes, bytes | None]] = [(e.header, p) for e, p in chain]
    items[5] = (bytes(forged), chain[5][1])

    stream, _reader, _writer = await handshake(served.parsed, x)
    client = ReplicationClient(stream)
    await client.send(m.Hello(b""))
    assert isinstance(await client.receive(), m.Hello)
    # The dialler names its feeds first; the accepting side answers about those.
    await client.send(m.Notes({x.public_key: m.note(9, False)}))
    notes = await client.receive()
    assert isinstance(notes, m.Notes)
    assert notes.notes.get(x.public_key) == m.note(0, True), "the victim must want X from us"
    await client.send(m.Entries(items))

    await client.until_hung_up(PROMPT)  # raises TimeoutError if the victim keeps talking
    assert victim.latest(x.public_key) == 5
    assert victim.stored_seqs(x.public_key) == [1, 2, 3, 4, 5]
    assert "dropping peer" in victim.log_text()
    await honest_sync_works(crew, served, "honest")
    assert victim.stored_seqs(x.public_key) == [1, 2, 3, 4, 5]
    victim.check()


# ---- b. an RPC frame announcing 10 MB --------------------------------------------


async def test_oversized_frame_is_refused_at_its_length_prefix(crew: Crew) -> None:
    victim, served = start_victim(crew)
    stream, reader, _writer = await handshake(served.parsed, Identity.generate())
    stream.write((10 * 1024 * 1024).to_bytes(4, "big") + bytes(1024))
    await stream.drain()
    assert await seconds_until_hung_up(reader, PROMPT + 2) < PROMPT
    assert "FrameTooLarge" in victim.log_text()
    await honest_sync_works(crew, served, "honest")


# ---- c. garbage instead of box-stream --------------------------------------------


async def test_garbage_after_handshake_is_hung_up_on(crew: Crew) -> None:
    victim, served = start_victim(crew)
    _stream, reader, writer = await handshake(served.parsed, Identity.generate())
    writer.write(os.urandom(4096))  # raw bytes where box-stream packets belong
    await writer.drain()
    assert await seconds_until_hung_up(reader, PROMPT + 2) < PROMPT
    assert "StreamCorrupted" in victim.log_text()
    await honest_sync_works(crew, served, "honest")


# ---- d. slowloris handshakes -----------------------------------------------------


async def drip(writer: asyncio.StreamWriter, data: bytes, stop: asyncio.Event) -> None:
    """Send ``data`` one byte a second until the victim hangs up."""
    for byte in data:
        if stop.is_set():
            return
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(1.0)


async def test_slowloris_handshakes_time_out_while_others_sync(crew: Crew) -> None:
    _victim, served = start_victim(crew)
    address = served.parsed
    silent_r, silent_w = await open_tcp(address)
    drip_r, drip_w = await open_tcp(address)
    msg1 = ClientHandshake(P2PCREW_NETWORK_KEY, Identity.generate().signing_key, address.key)
    stop = asyncio.Event()
    dripping = asyncio.create_task(drip(drip_w, msg1.data_to_send(), stop))
    started = time.monotonic()
    silent = asyncio.create_task(seconds_until_hung_up(silent_r, SLOWLORIS_LIMIT + 5))
    dribble = asyncio.create_task(seconds_until_hung_up(drip_r, SLOWLORIS_LIMIT + 5))
    try:
        await honest_sync_works(crew, served, "honest")
        synced_after = time.monotonic() - started
        closed = [await silent, await dribble]
    finally:
        stop.set()
        await dripping
        for writer in (silent_w, drip_w):
            writer.close()
    assert synced_after < HANDSHAKE_TIMEOUT - 1, "the honest sync waited behind slowloris"
    for seconds in closed:
        assert seconds < SLOWLORIS_LIMIT, closed


# ---- e. another network's key ----------------------------------------------------


async def test_wrong_network_key_fails_fast_on_both_sides(crew: Crew, tmp_path: Path) -> None:
    victim, served = start_victim(crew)
    other_network = hashlib.blake2b(b"some other crew's network", digest_size=32).digest()
    store = SqliteStore(tmp_path / "dialer")
    node = Node(store, Identity.generate(), network_key=other_network)
    try:
        started = time.monotonic()
        with pytest.raises(BadNetworkKey):
            await node.connect(served.parsed)
        assert time.monotonic() - started < PROMPT
        await async_wait_until(
            lambda: "different network key" in victim.log_text(),
            PROMPT - (time.monotonic() - started),
            "the victim to log the failed handshake",
        )
    finally:
        await node.close()
        store.close()
    await honest_sync_works(crew, served, "honest")

"""The pub's relay and transports in one process over real loopback sockets.

Limits are shrunk (grace periods, quotas, handshake slots) so each behaviour shows up
in well under a second. Members are ordinary ``Node``s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import now_ms
from p2pcrew.pub.config import PubConfig
from p2pcrew.pub.relay import INVITE_USE, PubRelay
from p2pcrew.pub.server import PubService
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.peer import RemoteError
from p2pcrew.replicate.secure_stream import client_handshake, server_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY, ClientHandshake
from p2pcrew.replicate.ws_transport import dial, open_ws_streams


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


class Pub:
    def __init__(self, service: PubService) -> None:
        self.service = service
        self.relay = service.relay

    def secret(self, uses: int = 1) -> bytes:
        return self.relay.invites.create(uses=uses, expires=None, now=now_ms())


@contextlib.asynccontextmanager
async def running_pub(tmp_path: Path, **limits: Any) -> AsyncIterator[Pub]:
    config = PubConfig(**limits)
    root = tmp_path / "pub"
    store = SqliteStore(root)
    service = PubService(PubRelay(store, Identity.generate(), config, root), config, root)
    await service.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    try:
        yield Pub(service)
    finally:
        await service.shutdown()
        store.close()


@contextlib.asynccontextmanager
async def nodes(tmp_path: Path, *names: str) -> AsyncIterator[list[Node]]:
    made = [Node(SqliteStore(tmp_path / n), Identity.generate()) for n in names]
    for node in made:
        await node.start()
    try:
        yield made
    finally:
        for node in made:
            await node.close()
            node.store.close()


async def join(node: Node, pub: Pub, *, ws: bool = False) -> None:
    address = pub.service.ws_address if ws else pub.service.tcp_address
    assert address is not None
    link = await dial(node, address, source="pub")
    await link.request(INVITE_USE, {"secret": pub.secret()})


async def test_a_guest_is_served_nothing_until_it_joins_on_the_same_link(tmp_path: Path) -> None:
    async with running_pub(tmp_path) as pub, nodes(tmp_path, "ana", "bo") as (ana, bo):
        ana.publish([c.Post(text=f"p{i}", time=1) for i in range(5)])
        await join(ana, pub)
        await wait_for(lambda: pub.relay.store.latest_seqs().get(ana.identity.public_key) == 5)
        bo.publish([c.Contact(contact=ana.identity.public_key, action="follow", time=1)])
        assert pub.service.tcp_address is not None
        link = await dial(bo, pub.service.tcp_address)
        await asyncio.sleep(0.3)  # a guest: replication is parked, nothing flows
        assert ana.identity.public_key not in bo.store.latest_seqs()
        assert bo.identity.public_key in pub.relay.guests
        await link.request(INVITE_USE, {"secret": pub.secret()})
        await wait_for(lambda: bo.store.latest_seqs().get(ana.identity.public_key) == 5)
        assert bo.identity.public_key in pub.relay.members
        assert not pub.relay.guests


async def test_live_fan_out_to_connected_members_over_ws(tmp_path: Path) -> None:
    async with running_pub(tmp_path) as pub, nodes(tmp_path, "ana", "bo") as (ana, bo):
        bo.publish([c.Contact(contact=ana.identity.public_key, action="follow", time=1)])
        await join(ana, pub, ws=True)
        await join(bo, pub, ws=True)
        ana.publish([c.Post(text="live", time=1)])
        await wait_for(lambda: bo.store.latest_seqs().get(ana.identity.public_key) == 1)
        assert pub.service.metrics.transfer["ws"].received > 0


async def test_a_guest_who_does_not_join_is_dropped(tmp_path: Path) -> None:
    async with running_pub(tmp_path, guest_grace=0.3) as pub, nodes(tmp_path, "eve") as (eve,):
        assert pub.service.tcp_address is not None
        link = await dial(eve, pub.service.tcp_address)
        await asyncio.wait_for(link.closed.wait(), 5)
        assert pub.relay.metrics.guests_dropped.get() == 1
        assert not pub.relay.guests


async def test_invite_attempts_are_rate_limited_and_uniform(tmp_path: Path) -> None:
    async with (
        running_pub(tmp_path, invite_attempts_per_minute=2) as pub,
        nodes(tmp_path, "eve") as (eve,),
    ):
        assert pub.service.tcp_address is not None
        link = await dial(eve, pub.service.tcp_address)
        used = pub.secret()
        pub.relay.invites.redeem(used, now_ms())  # used up by someone else
        reasons = []
        for secret in (used, bytes(32), bytes(32)):
            with pytest.raises(RemoteError) as caught:
                await link.request(INVITE_USE, {"secret": secret})
            reasons.append((caught.value.reason, str(caught.value)))
        assert reasons[0] == reasons[1]  # used up and forged: the same answer
        assert reasons[0][0] == "invite-invalid"
        assert reasons[2][0] == "rate-limited"
        with pytest.raises(RemoteError, match="bad-request"):
            await link.request(INVITE_USE, {"secret": "nope"})


async def test_a_silent_handshake_is_evicted_for_a_newcomer(tmp_path: Path) -> None:
    """The one slot is held by a socket that sent nothing: the next connection takes it."""
    async with running_pub(tmp_path, max_handshakes=1) as pub:
        assert pub.service.tcp_address is not None
        host, port = pub.service.tcp_address.host, pub.service.tcp_address.port
        silent_reader, silent = await asyncio.open_connection(host, port)
        await wait_for(lambda: pub.service.metrics.handshakes_in_flight == 1)
        _, newcomer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""  # hung up at once
        await wait_for(lambda: pub.service.metrics.handshakes.get("tcp", "evicted") == 1)
        assert pub.service.metrics.handshakes_in_flight == 1  # the newcomer's
        assert pub.service.metrics.handshakes.get("tcp", "refused") == 0
        newcomer.close()
        silent.close()


async def test_handshakes_beyond_the_limit_are_refused_unread(tmp_path: Path) -> None:
    """The one slot is held by a young handshake past a valid msg1: refuse, unread."""
    async with running_pub(tmp_path, max_handshakes=1) as pub:
        assert pub.service.tcp_address is not None
        host, port = pub.service.tcp_address.host, pub.service.tcp_address.port
        _, hanging = await asyncio.open_connection(host, port)
        client = ClientHandshake(
            P2PCREW_NETWORK_KEY, Identity.generate().signing_key, pub.relay.identity.public_key
        )
        hanging.write(client.data_to_send())  # a valid msg1, then silence
        await wait_for(lambda: len(pub.service.gate._past_msg1) == 1)
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed at once
        writer.close()
        hanging.close()
        assert pub.service.metrics.handshakes.get("tcp", "refused") == 1
        assert pub.service.metrics.handshakes.get("tcp", "evicted") == 0


async def test_a_member_over_quota_stops_being_replicated(tmp_path: Path) -> None:
    quota = 4000
    async with (
        running_pub(tmp_path, member_quota_bytes=quota) as pub,
        nodes(tmp_path, "ana") as (ana,),
    ):
        ana.publish([c.Post(text="x" * 200, time=1) for _ in range(40)])
        await join(ana, pub)
        await wait_for(lambda: ana.identity.public_key in pub.relay.over_quota)
        stored = pub.relay.store.latest_seqs().get(ana.identity.public_key, 0)
        assert 0 < stored < 40
        assert pub.relay.usage[ana.identity.public_key] <= quota
        assert pub.relay.metrics.over_quota_rejected.get() > 0
        assert ana.identity.public_key not in pub.relay.state.wanted


async def test_ws_transport_bounds_what_a_slow_reader_costs(tmp_path: Path) -> None:
    """The server writes much more than the client reads: drain() waits, memory stays bounded."""
    server_key, client_key = Identity.generate(), Identity.generate()
    limit = 32 * 1024
    peak = 0
    done = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal peak
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        reader, writer, transport = open_ws_streams(ws, limit=limit)
        stream = await server_handshake(reader, writer, P2PCREW_NETWORK_KEY, server_key.signing_key)
        with contextlib.suppress(Exception):
            for _ in range(16384):  # 64 MiB: far more than any socket buffer holds
                stream.write(bytes(4096))
                peak = max(peak, transport.get_write_buffer_size())
                await stream.drain()
        done.set()
        transport.abort()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws")
            reader, writer, transport = open_ws_streams(ws, limit=limit)
            await client_handshake(
                reader, writer, P2PCREW_NETWORK_KEY, client_key.signing_key, server_key.public_key
            )
            await asyncio.sleep(0.5)  # read nothing: the server must be held back
            assert not done.is_set()
            assert not transport.is_reading()  # we paused aiohttp once our buffer was full
            transport.abort()
            await asyncio.wait_for(done.wait(), 15)
    finally:
        await runner.cleanup()
    assert peak <= limit + 4096 + 64  # high-water mark plus one write (box overhead)


async def test_entries_from_a_guest_are_neither_stored_nor_parked(tmp_path: Path) -> None:
    """Nobody asked a guest for entries; holding them would let guests pin memory."""
    from p2pcrew.replicate import messages as m

    async with running_pub(tmp_path) as pub, nodes(tmp_path, "bo") as (bo,):
        entries = bo.publish([c.Post(text=f"early {i}", time=1) for i in range(20)])
        assert pub.service.tcp_address is not None
        link = await dial(bo, pub.service.tcp_address)
        await wait_for(lambda: bo.identity.public_key in pub.relay.guests)
        raw = [(e.header, bo.store.get(e.id).payload) for e in entries]  # type: ignore[union-attr]
        for _ in range(8):  # more than a guest may park
            link.queue_message(m.Entries(raw))
        await asyncio.sleep(0.5)
        guest = pub.relay.guests[bo.identity.public_key]
        assert guest.parked == [] or all(not isinstance(x, m.Entries) for x in guest.parked)
        assert bo.identity.public_key not in pub.relay.store.latest_seqs()
        assert not link.closed.is_set()
        await link.request(INVITE_USE, {"secret": pub.secret()})  # still welcome to join
        await wait_for(lambda: pub.relay.store.latest_seqs().get(bo.identity.public_key) == 20)

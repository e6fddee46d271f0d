"""Nodes over real loopback sockets (real handshake, box-stream, RPC, SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import Node


def make_node(tmp: Path, name: str) -> Node:
    return Node(SqliteStore(tmp / name), Identity.generate())


async def serve(node: Node) -> Address:
    await node.start()
    host, port = await node.listen("127.0.0.1", 0)
    return Address("tcp", host, port, node.identity.public_key)


def posts(node: Node, n: int, prefix: str) -> None:
    node.publish([c.Post(text=f"{prefix} {i}", time=1) for i in range(n)])


async def wait_for(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_two_nodes_sync_then_stay_live(tmp_path: Path) -> None:
    a, b = make_node(tmp_path, "a"), make_node(tmp_path, "b")
    a.publish([c.Contact(contact=b.identity.public_key, action="follow", time=1)])
    posts(a, 499, "a")
    posts(b, 20, "b")
    addr = await serve(a)
    await b.start()
    link = await b.sync_with(addr)
    assert link.close_reason == "", link.close_reason
    assert b.store.latest_seqs()[a.identity.public_key] == 500
    await wait_for(lambda: a.store.latest_seqs().get(b.identity.public_key) == 20)
    # Live: connect again and keep the link open; a new post arrives by push.
    await b.connect(addr)
    await wait_for(
        lambda: a.identity.public_key in b.links and b.in_sync_with(a.identity.public_key)
    )
    posts(a, 1, "live")
    await wait_for(lambda: b.store.latest_seqs()[a.identity.public_key] == 501)
    await b.close()
    await a.close()
    a.store.close()
    b.store.close()


async def test_chain_a_b_c(tmp_path: Path) -> None:
    a, b, cc = make_node(tmp_path, "a"), make_node(tmp_path, "b"), make_node(tmp_path, "c")
    # c follows a without ever meeting it; b connects to both.
    cc.publish([c.Contact(contact=a.identity.public_key, action="follow", time=1)])
    b.publish([c.Contact(contact=a.identity.public_key, action="follow", time=1)])
    posts(a, 50, "a")
    addr_a, addr_c = await serve(a), await serve(cc)
    await b.start()
    await b.connect(addr_a)
    await b.connect(addr_c)
    await wait_for(lambda: cc.store.latest_seqs().get(a.identity.public_key) == 50)
    for n in (a, b, cc):
        await n.close()
        n.store.close()


async def test_handshakes_in_flight_are_capped(tmp_path: Path) -> None:
    """Silent sockets never hold more than the cap, and cannot lock an honest peer out:
    the oldest silent one is evicted for each newcomer, while the flood is still on."""
    from p2pcrew.replicate.node import MAX_HANDSHAKES_IN_FLIGHT

    a, b = make_node(tmp_path, "a"), make_node(tmp_path, "b")
    addr = await serve(a)
    silent = [await asyncio.open_connection(addr.host, addr.port) for _ in range(40)]
    await asyncio.sleep(0.2)
    assert a.handshakes.in_flight <= MAX_HANDSHAKES_IN_FLIGHT
    hung_up = 0
    for reader, _writer in silent[: 40 - MAX_HANDSHAKES_IN_FLIGHT]:
        try:
            if await asyncio.wait_for(reader.read(1), 0.5) == b"":
                hung_up += 1
        except TimeoutError:
            pass
    assert hung_up == 40 - MAX_HANDSHAKES_IN_FLIGHT  # the oldest went first
    assert a.handshakes.evictions == hung_up
    b.add_feeds([a.identity.public_key])
    await b.start()
    link = await asyncio.wait_for(b.sync_with(addr), 5.0)  # the flood is still connected
    assert link.close_reason == ""
    for _reader, writer in silent:
        writer.close()
    for n in (a, b):
        await n.close()
        n.store.close()

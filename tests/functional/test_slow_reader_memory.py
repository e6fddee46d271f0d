"""A peer that asks for a feed of big entries and never reads costs the sender one batch.

Regression test: the sender used to read up to 256 rows per batch (4 MB of 16 KiB
entries) to send the ~48 KiB that fit in one ENTRIES message, so 50 slow readers asking
at once took a pub from 147 MB to 297 MB for a moment (docs/reliability.md, "Slow
readers, twice"). Measured with tracemalloc over a real node, socket and SQLite store:
the rows the sender reads are Python ``bytes``, so reading 256 of them shows up as a
3 MB peak with the largest posts (4.5 MB measured before the fix), where one batch,
the RPC window and the buffers stay under 1 MB (0.43 MB measured).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate import messages as m
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.peer import REPLICATE
from p2pcrew.replicate.rpc import RpcConnection
from p2pcrew.replicate.secure_stream import client_handshake
from p2pcrew.replicate.shs import P2PCREW_NETWORK_KEY

BIG_ENTRIES = 300
TEXT = "é" * 5_990
"""About 12 KB of UTF-8 per entry: the most a post's text may take."""
PEAK_LIMIT = 1536 * 1024
"""Well above one batch with its buffers, well below 256 rows (3 MB)."""


async def test_a_reader_that_never_reads_costs_one_batch(tmp_path: Path) -> None:
    reader_id = Identity.generate()
    node = Node(SqliteStore(tmp_path / "sender"), Identity.generate())
    node.publish([c.Contact(contact=reader_id.public_key, action="follow", time=1)])
    node.publish([c.Post(text=f"{i} {TEXT}", time=1) for i in range(BIG_ENTRIES)])
    feed = node.identity.public_key
    await node.start()
    host, port = await node.listen("127.0.0.1", 0)
    address = Address("tcp", host, port, feed)
    reader, writer = await asyncio.open_connection(host, port)
    stream = await client_handshake(
        reader, writer, P2PCREW_NETWORK_KEY, reader_id.signing_key, address.key, timeout=10
    )
    tracemalloc.start()
    try:
        rpc = RpcConnection(client=True)
        sid = rpc.open_stream(REPLICATE, {"version": 1})
        rpc.send_data(sid, m.encode_message(m.Hello(b"")))
        rpc.send_data(sid, m.encode_message(m.Notes({feed: m.note(0, True)})))
        stream.write(rpc.data_to_send())
        await stream.drain()
        # ... and never read again. Give the sender time to fill every buffer and
        # then wait for credit that never comes.
        link = None
        for _ in range(100):
            await asyncio.sleep(0.05)
            link = next(iter(node.links.values()), None)
            if link is not None and link.entries_sent > 0:
                break
        assert link is not None and link.entries_sent > 0, "the sender never started"
        await asyncio.sleep(1.0)
        sent = link.entries_sent
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stream.abort()
        await node.close()
        node.store.close()
    assert sent < BIG_ENTRIES, "the reader was sent everything: it was not slow"
    assert peak < PEAK_LIMIT, f"sender peaked at {peak / 1e6:.1f} MB for one slow reader"

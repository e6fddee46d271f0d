"""Received entries are stored while the next ones are read, within the stream window.

``PeerLink`` hands ENTRIES to an ingest task and keeps reading; messages that arrive
while the store is busy are stored together. These tests run two real nodes over
loopback with a receiver whose store is made slow or broken (a real SqliteStore
with a delay or a failure injected in ``ingest``), and show:

- the bytes received and not yet stored never exceed the RPC window (the credit for
  a message goes back only once it is stored), yet several messages are stored in
  one batch;
- every entry arrives, in order, with nothing lost or duplicated;
- a store that fails ends the link with a reason, instead of a reader that waits
  forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import IngestResult
from p2pcrew.replicate.node import Node
from p2pcrew.replicate.rpc import DEFAULT_INITIAL_WINDOW
from tests.functional.test_node_loopback import serve

Item = tuple[bytes, bytes | None]


class SlowStore(SqliteStore):
    """Takes ``delay`` seconds longer over every ingest, like a slow disk."""

    delay = 0.05
    calls = 0

    def ingest(
        self, items: Sequence[Item], *, expected_author: bytes | None = None
    ) -> IngestResult:
        self.calls += 1
        time.sleep(self.delay)
        return super().ingest(items, expected_author=expected_author)


class BrokenStore(SqliteStore):
    def ingest(
        self, items: Sequence[Item], *, expected_author: bytes | None = None
    ) -> IngestResult:
        raise sqlite3.OperationalError("disk I/O error")


async def test_slow_store_batches_within_the_window(tmp_path: Path) -> None:
    a = Node(SqliteStore(tmp_path / "a"), Identity.generate())
    b = Node(SlowStore(tmp_path / "b"), Identity.generate())
    a.publish([c.Post(text=f"post {i} " + "x" * 200, time=1) for i in range(3000)])
    addr = await serve(a)
    b.add_feeds([a.identity.public_key])
    await b.start()
    peak = 0
    task = asyncio.create_task(b.sync_with(addr))
    while not task.done():
        for link in list(b.links.values()):
            peak = max(peak, link.unstored_bytes)
        await asyncio.sleep(0.005)
    link = task.result()
    assert link.close_reason == "", link.close_reason
    assert b.store.latest_seqs()[a.identity.public_key] == 3000
    assert [s.entry.seq for s in b.store.range(a.identity.public_key)] == list(range(1, 3001))
    assert 0 < peak <= DEFAULT_INITIAL_WINDOW
    assert isinstance(b.store, SlowStore)
    messages = link.entries_received  # entries; each ENTRIES message holds < 200 of them
    assert b.store.calls == link.ingest_batches
    assert link.ingest_batches < messages / 200, "messages that queued up were stored together"
    for n in (a, b):
        await n.close()
        n.store.close()


async def test_a_failing_store_ends_the_link_with_a_reason(tmp_path: Path) -> None:
    a = Node(SqliteStore(tmp_path / "a"), Identity.generate())
    b = Node(BrokenStore(tmp_path / "b"), Identity.generate())
    a.publish([c.Post(text=f"post {i}", time=1) for i in range(50)])
    addr = await serve(a)
    b.add_feeds([a.identity.public_key])
    await b.start()
    link = await asyncio.wait_for(b.sync_with(addr, timeout=20.0), 30.0)
    assert link.closed.is_set()
    assert "storing received entries failed" in link.close_reason
    assert "disk I/O error" in link.close_reason
    for n in (a, b):
        await n.close()
        n.store.close()

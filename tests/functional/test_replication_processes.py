"""Replication between separate ``p2pcrew`` processes over real loopback sockets.

Every node here is its own process with its own data directory, driven through the
CLI as a person would (``serve``, ``sync``, ``post`` through the control socket); the
test process only reads stores read-only and, for the cut connection, sits in the
middle as a TCP proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcrew.replicate.address import Address
from tests.functional.procs import Crew, Peer, async_wait_until, wait_until

SYNC_WAIT = 20.0
BULK = 3000
CUT_AFTER_BYTES = 250_000
"""About a third of what 3,000 posts take on the wire, so the cut lands mid-stream."""


@pytest.fixture
def crew(tmp_path: Path) -> Iterator[Crew]:
    with Crew(tmp_path) as processes:
        yield processes


def same_feeds(*peers: Peer) -> None:
    views = [p.json("feeds") for p in peers]
    for view in views[1:]:
        assert view == views[0]
    assert not any(row["forked"] for row in views[0])


# ---- 1. two processes, both directions -------------------------------------------


def test_two_processes_replicate_both_ways(crew: Crew) -> None:
    a, b = crew.peer("a"), crew.peer("b")
    a.run("follow", b.feed)
    b.run("follow", a.feed)
    a.posts(40, "from a")
    b.posts(25, "from b")
    served = a.serve()
    result = b.json("sync", served.address)
    assert result["peer"] == a.feed
    assert result["received"] == {a.feed: 41}
    wait_until(lambda: a.latest(b.key) == 26, SYNC_WAIT, "A to hold all of B's feed")
    assert b.latest(a.key) == 41
    assert a.latest_seqs() == b.latest_seqs() == {a.feed: 41, b.feed: 26}
    same_feeds(a, b)
    a.check()
    b.check()


# ---- 2. a chain A - B - C, then live forwarding ------------------------------------


def test_chain_relays_history_then_live_entries(crew: Crew) -> None:
    a, b, c = crew.peer("a"), crew.peer("b"), crew.peer("c")
    b.run("follow", a.feed)
    c.run("follow", a.feed)  # C follows A but never dials it
    a.posts(30, "from a")
    served_a = a.serve()
    served_b = b.serve(served_a.address)
    wait_until(lambda: b.latest(a.key) == 30, SYNC_WAIT, "B to fetch A's feed")

    c.run("sync", served_b.address)
    assert c.latest(a.key) == 30

    live_c = c.serve(served_b.address)
    wait_until(
        lambda: any(line.startswith("Connected to") for line in live_c.lines),
        SYNC_WAIT,
        "C to connect to B",
    )
    a.run("post", "live from A")  # A's serve holds the store: this goes through its socket
    assert served_a.proc.poll() is None
    wait_until(lambda: c.latest(a.key) == 31, SYNC_WAIT, "A's new post to reach C via B")
    assert [line for line in live_c.lines if line.startswith("Connected to")] == [
        f"Connected to {served_b.address}"
    ]
    assert {row["feed"] for row in c.json("peers")} == {b.feed}  # C never knew A's address
    assert c.stored_seqs(a.key) == list(range(1, 32))
    c.check()


# ---- 3. a connection cut mid-stream resumes without loss or duplication -----------


class CuttingProxy:
    """Forwards TCP connections to a target; cuts each after ``limit`` bytes downstream.

    "Downstream" is target to client. At the limit both sides are closed (FIN, no
    goodbye), which each peer must treat as a truncated stream.
    """

    def __init__(self, target: Address, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.downstream = 0
        self.cut = False
        self._server: asyncio.Server | None = None

    async def start(self) -> Address:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return Address("tcp", "127.0.0.1", port, self.target.key)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.wait_for(
            asyncio.open_connection(self.target.host, self.target.port), 5.0
        )
        upstream = asyncio.create_task(_pump(down_r, up_w))
        try:
            await self._pump_down(up_r, down_w)
        finally:
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upstream
            for writer in (up_w, down_w):
                writer.close()

    async def _pump_down(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while self.downstream < self.limit:
            data = await asyncio.wait_for(src.read(65536), 30.0)
            if not data:
                return
            piece = data[: self.limit - self.downstream]
            dst.write(piece)
            await dst.drain()
            self.downstream += len(piece)
        self.cut = True


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()


async def test_cut_mid_stream_resumes_without_loss_or_duplicates(crew: Crew) -> None:
    a, b = crew.peer("a"), crew.peer("b")
    a.posts(BULK, "bulk")
    served = a.serve()
    proxy = CuttingProxy(served.parsed, CUT_AFTER_BYTES)
    via_proxy = await proxy.start()
    try:
        cut = await asyncio.to_thread(b.run, "sync", str(via_proxy), ok=False)
    finally:
        proxy.close()
    assert proxy.cut, "the proxy never reached its limit: the sync finished first"
    assert cut.returncode == 1, cut.stdout + cut.stderr
    partial = b.latest(a.key)
    assert 0 < partial < BULK, partial
    assert b.stored_seqs(a.key) == list(range(1, partial + 1))

    again = await asyncio.to_thread(b.json, "sync", served.address)
    assert again["received_total"] == BULK - partial
    await async_wait_until(lambda: b.latest(a.key) == BULK, SYNC_WAIT, "B to hold A's feed")
    assert b.stored_seqs(a.key) == list(range(1, BULK + 1))
    checked = b.json("check")
    assert checked == {"entries": BULK, "problems": []}  # B published nothing itself
    assert b.json("feeds") == a.json("feeds")


# ---- 4. restoring a key continues the feed instead of forking it -----------------


def test_restored_key_waits_for_its_feed_then_continues_it(crew: Crew) -> None:
    a, b = crew.peer("a"), crew.peer("b")
    a.posts(5, "before backup")
    original = a.json("log")
    backup = a.run("export-key").stdout
    b.run("follow", a.feed)
    served_b = b.serve()
    a.run("sync", served_b.address)
    wait_until(lambda: b.latest(a.key) == 5, SYNC_WAIT, "B to replicate A")

    a2 = crew.peer("a2", init=False)
    a2.run("import-key", stdin=backup)
    assert a2.feed == a.feed
    refused = a2.run("post", "too early", ok=False)
    assert refused.returncode == 1 and "fork" in refused.stderr, refused.stderr
    assert a2.latest(a.key) == 0

    a2.run("sync", served_b.address)
    assert a2.latest(a.key) == 5
    posted = a2.json("post", "after restore")
    assert posted["seq"] == 6
    log = a2.json("log")
    assert [e["seq"] for e in log] == [1, 2, 3, 4, 5, 6]
    assert log[:5] == [{**e, "received_at": log[i]["received_at"]} for i, e in enumerate(original)]
    a2.check()

    # The peer holding the old history takes seq 6 as its continuation, not a fork.
    a2.run("sync", served_b.address)
    wait_until(lambda: b.latest(a.key) == 6, SYNC_WAIT, "B to take the restored feed's seq 6")
    assert not any(row["forked"] for row in b.json("feeds"))
    b.check()


async def test_restore_stays_paused_after_a_partial_fetch_of_own_feed(crew: Crew) -> None:
    """Fetching *some* of the own feed is not enough: the rest would be forked over."""
    a, b = crew.peer("a"), crew.peer("b")
    a.posts(BULK, "before backup")
    backup = a.run("export-key").stdout
    b.run("follow", a.feed)
    served_b = b.serve()
    await asyncio.to_thread(a.run, "sync", served_b.address)
    await async_wait_until(lambda: b.latest(a.key) == BULK, SYNC_WAIT, "B to replicate A")

    a2 = crew.peer("a2", init=False)
    await asyncio.to_thread(a2.run, "import-key", stdin=backup)
    proxy = CuttingProxy(served_b.parsed, CUT_AFTER_BYTES)
    via_proxy = await proxy.start()
    try:
        cut = await asyncio.to_thread(a2.run, "sync", str(via_proxy), ok=False)
    finally:
        proxy.close()
    assert proxy.cut and cut.returncode == 1, cut.stdout + cut.stderr
    assert 0 < a2.latest(a.key) < BULK

    early = await asyncio.to_thread(a2.run, "post", "would fork", ok=False)
    assert early.returncode == 1 and "fork" in early.stderr, (
        f"posting after fetching {a2.latest(a.key)} of {BULK} own entries was allowed: "
        f"{early.stdout}{early.stderr}"
    )

"""Replication between real processes through a faulty network (tests/faultproxy.py).

A runs ``p2pcrew serve`` for the whole module; every test gives it a fresh B that
runs ``p2pcrew sync`` through a ``FaultProxy`` (this kernel has no ``tc netem``).
What each fault must cost: slowness (latency, one byte at a time) costs time only;
an altered byte ends the sync with box-stream's authentication error and stores
nothing unverified; a dead link ends the sync within ``--timeout`` with a message
that says so; a cut at any byte leaves a verified prefix that a later sync
completes, without gaps or duplicates.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import pytest

from p2pcrew.feed.check import check_store
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate.address import Address
from tests.faultproxy import FaultProxy, Faults
from tests.functional.procs import Crew, Peer, ServeProcess

FEED = 600
"""A's feed: about 150 kB on the wire, so a cut can land early, mid-stream or late."""
SMALL = 10
"""The feed carried one byte at a time."""
BIG = 2000
"""More than one RPC window (256 KiB), so a deadline can fall mid-transfer."""
SYNC_TIMEOUT = "30"
"""``sync --timeout`` for syncs that must succeed: a hang fails fast."""
GIVE_UP = 2.0
"""``sync --timeout`` on a dead link."""
GIVE_UP_SLACK = 4.0
"""Process start, handshake and a short goodbye on a loaded machine."""
HANDSHAKE_UP = 64 + 112
"""Bytes the client sends in the Secret Handshake (msg1, msg3)."""
HANDSHAKE_DOWN = 64 + 80
"""Bytes the server sends in the Secret Handshake (msg2, msg4)."""


@dataclass
class Sources:
    crew: Crew
    a: Peer
    served_a: ServeProcess
    s: Peer
    served_s: ServeProcess


@pytest.fixture(scope="module")
def big(sources: Sources) -> tuple[Peer, ServeProcess]:
    """L with ``BIG`` posts, serving; made only for the test that needs it."""
    big = sources.crew.peer("l")
    big.posts(BIG, "from l")
    return big, serve(sources.crew, big)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sources]:
    """A with ``FEED`` posts and S with ``SMALL`` posts, serving for the whole module."""
    with Crew(tmp_path_factory.mktemp("faults")) as crew:
        a, s = crew.peer("a"), crew.peer("s")
        a.posts(FEED, "from a")
        s.posts(SMALL, "from s")
        yield Sources(crew, a, serve(crew, a), s, serve(crew, s))


def serve(crew: Crew, peer: Peer) -> ServeProcess:
    return crew.start(peer, ["serve", "--listen", "127.0.0.1:0", "--no-lan"])  # loopback only


def proxy_to(
    served: ServeProcess, *, upstream: Faults | None = None, downstream: Faults | None = None
) -> FaultProxy:
    return FaultProxy(
        served.parsed.host, served.parsed.port, upstream=upstream, downstream=downstream
    )


def via(proxy: FaultProxy, served: ServeProcess) -> str:
    return str(Address("tcp", *proxy.address, served.parsed.key))


async def sync(peer: Peer, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(peer.run, "sync", address, "--json", *args, ok=False)


def synced(out: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert out.returncode == 0, f"sync failed: {out.stdout}{out.stderr}"
    result: dict[str, object] = json.loads(out.stdout)
    return result


def sound_prefix(b: Peer, source: Peer) -> int:
    """B holds seqs 1..n of the source's feed, each verified; return n."""
    held = b.stored_seqs(source.key)
    assert held == list(range(1, len(held) + 1)), f"gaps or disorder: {held[:5]}..."
    with closing(SqliteStore(b.home, readonly=True)) as store:
        assert list(check_store(store)) == []
    return len(held)


def holds_exactly(b: Peer, source: Peer, n: int) -> None:
    """All of the feed, once each, and nothing else (B publishes nothing)."""
    assert b.stored_seqs(source.key) == list(range(1, n + 1))
    assert b.latest_seqs() == {source.feed: n}
    with closing(SqliteStore(b.home, readonly=True)) as store:
        assert store.count() == n


# ---- slowness costs time only ---------------------------------------------------------


async def test_latency_with_jitter_converges(sources: Sources) -> None:
    b = sources.crew.peer("b-latency")
    link = Faults(delay=0.05, jitter=0.02, seed=50)
    async with proxy_to(sources.served_a, upstream=link, downstream=link) as proxy:
        out = await sync(b, via(proxy, sources.served_a), "--timeout", SYNC_TIMEOUT)
    assert synced(out)["received_total"] == FEED
    holds_exactly(b, sources.a, FEED)
    assert proxy.accepted == 1


async def test_one_byte_at_a_time_converges(sources: Sources) -> None:
    b = sources.crew.peer("b-trickle")
    trickle = Faults(one_byte_at_a_time=True)  # each byte its own write (TCP_NODELAY)
    async with proxy_to(sources.served_s, upstream=trickle, downstream=trickle) as proxy:
        out = await sync(b, via(proxy, sources.served_s), "--timeout", SYNC_TIMEOUT)
    assert synced(out)["received_total"] == SMALL
    holds_exactly(b, sources.s, SMALL)
    assert proxy.bytes_down > SMALL * 100  # the whole feed really went byte by byte


# ---- an altered byte ------------------------------------------------------------------


async def test_corrupted_byte_fails_authentication_and_stores_nothing_bad(
    sources: Sources,
) -> None:
    a, b = sources.a, sources.crew.peer("b-corrupt")
    flip = Faults(corrupt_at=60_000)  # mid-stream, inside an entries packet
    async with proxy_to(sources.served_a, downstream=flip) as proxy:
        address = via(proxy, sources.served_a)
        bad = await sync(b, address, "--timeout", SYNC_TIMEOUT)
        assert proxy.down.corrupted == 1
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "StreamCorrupted" in bad.stderr and "failed authentication" in bad.stderr
        b.check()  # `p2pcrew check`: every stored entry verifies, no gaps
        partial = sound_prefix(b, a)
        assert partial < FEED

        proxy.downstream = Faults()
        again = synced(await sync(b, address, "--timeout", SYNC_TIMEOUT))
    assert again["received_total"] == FEED - partial
    holds_exactly(b, a, FEED)
    b.check()


# ---- a dead link ----------------------------------------------------------------------


async def test_blackhole_after_handshake_gives_up_within_timeout(sources: Sources) -> None:
    b = sources.crew.peer("b-blackhole")
    async with proxy_to(
        sources.served_a,
        upstream=Faults(blackhole_after=HANDSHAKE_UP),
        downstream=Faults(blackhole_after=HANDSHAKE_DOWN),
    ) as proxy:
        started = time.monotonic()
        out = await sync(b, via(proxy, sources.served_a), "--timeout", str(GIVE_UP))
        took = time.monotonic() - started
    assert proxy.up.blackholes == proxy.down.blackholes == 1, "the handshake did not complete"
    assert out.returncode == 1, out.stdout + out.stderr
    message = out.stderr.lower()
    assert re.search(r"time[d ]?out|gave up|giving up", message), out.stderr
    assert "handshake" not in message, f"the blackhole hit the handshake: {out.stderr}"
    assert "crashed" not in message, f"a dead link reported as a crashed peer: {out.stderr}"
    assert took < GIVE_UP + GIVE_UP_SLACK, f"--timeout {GIVE_UP:g} took {took:.1f} s"
    assert b.stored_seqs(sources.a.key) == []


async def test_sync_out_of_time_on_a_slow_link_is_not_reported_as_done(
    big: tuple[Peer, ServeProcess], sources: Sources
) -> None:
    """A healthy but slow link: the deadline passes with a window of entries in
    flight and the rest unsent; the peer answers the goodbye. That is a partial
    sync, and must not exit 0 saying "Synced"."""
    source, served = big
    b = sources.crew.peer("b-slow")
    slow = Faults(delay=0.3)
    async with proxy_to(served, upstream=slow, downstream=slow) as proxy:
        out = await sync(b, via(proxy, served), "--timeout", "0.5")
    got = len(b.stored_seqs(source.key))
    if got == BIG:
        pytest.skip("the whole feed arrived before the deadline; nothing to judge")
    assert out.returncode == 1, f"sync exited 0 after receiving {got} of {BIG}: {out.stdout}"
    assert re.search(r"time[d ]?out|gave up|giving up", out.stderr.lower()), out.stderr


# ---- cuts -----------------------------------------------------------------------------

CUTS = [
    pytest.param("down", 100, False, id="down-100-in-handshake"),
    pytest.param("down", 3_000, False, id="down-3k-first-packets"),
    pytest.param("down", 60_000, False, id="down-60k-mid-stream"),
    pytest.param("down", 120_000, True, id="down-120k-late-rst"),
    pytest.param("up", 100, False, id="up-100-in-handshake"),
    pytest.param("up", HANDSHAKE_UP + 60, False, id="up-after-handshake"),
    pytest.param("both", 5_000, False, id="both-5k"),
]


@pytest.mark.parametrize(("direction", "limit", "reset"), CUTS)
async def test_cut_after_n_bytes_then_resume_converges(
    sources: Sources, direction: str, limit: int, reset: bool
) -> None:
    a, b = sources.a, sources.crew.peer(f"b-cut-{direction}-{limit}")
    cut = Faults(cut_after=limit, reset=reset)
    up = cut if direction in ("up", "both") else Faults()
    down = cut if direction in ("down", "both") else Faults()
    async with proxy_to(sources.served_a, upstream=up, downstream=down) as proxy:
        address = via(proxy, sources.served_a)
        broken = await sync(b, address, "--timeout", SYNC_TIMEOUT)
        assert proxy.up.cuts + proxy.down.cuts == 1, "the cut never happened"
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "error:" in broken.stderr
        partial = sound_prefix(b, a)
        assert partial < FEED

        proxy.upstream = proxy.downstream = Faults()
        again = synced(await sync(b, address, "--timeout", SYNC_TIMEOUT))
    assert again["received_total"] == FEED - partial
    holds_exactly(b, a, FEED)

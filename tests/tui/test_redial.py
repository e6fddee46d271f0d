"""The app's network side keeps in touch: a remembered peer that goes away and comes
back on the same port is dialled again, through ``NetworkRunner`` as the app runs it.

In-process: two real ``Node``s on one event loop, real loopback sockets and handshakes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import PeerRecord
from p2pcrew.home import Home
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import Node
from p2pcrew.tui.netrun import NetworkOptions, NetworkRunner, Notice

REDIAL_WITHIN = 20.0


async def until(cond: Callable[[], bool], what: str, timeout: float = REDIAL_WITHIN) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def dead_address() -> Address:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Address("tcp", "127.0.0.1", port, Identity.generate().public_key)


async def test_a_remembered_peer_is_dialled_again_after_it_restarts(tmp_path: Path) -> None:
    home = Home(tmp_path / "ana")
    home.ensure()
    ana_store = home.open_store()
    ana = Node(ana_store, Identity.generate())
    ben_id = Identity.generate()
    ben_store = SqliteStore(tmp_path / "ben")
    ben = Node(ben_store, ben_id)
    await ben.start()
    host, port = await ben.listen("127.0.0.1", 0)
    ben_address = Address("tcp", host, port, ben_id.public_key)
    ana_store.save_peer(PeerRecord(str(ben_address), ben_id.public_key, "pub"))  # as `join` does
    dead = dead_address()
    notices: list[Notice] = []
    options = NetworkOptions(host="127.0.0.1", port=0, connect=(dead,), lan=False, control=False)
    runner = NetworkRunner(home, options, notices.append)
    try:
        await runner.start(ana)
        await until(lambda: ben_id.public_key in ana.links, "Ana to reach Ben")

        await ben.close()  # Ben goes away ...
        await until(lambda: ben_id.public_key not in ana.links, "Ana to see Ben gone")
        ben = Node(ben_store, ben_id)  # ... and comes back on the same port
        await ben.start()
        await ben.listen("127.0.0.1", port)
        entry = ben.publish([c.Post(text="Ben is back", time=1)])[-1]
        await until(
            lambda: ana_store.latest_seqs().get(ben_id.public_key, 0) >= entry.seq,
            "Ben's new post at Ana",
        )
        keep = runner.keep
        assert keep is not None
        await until(lambda: keep.schedule.failures(dead) >= 3, "three dials of the dead")
        # The configured address that never answers: one notice, not one per retry.
        # The remembered peer that was away: nothing shown, only logged.
        assert [n.severity for n in notices] == ["warning"]
        assert str(dead) in notices[0].text
        record = next(p for p in ana_store.known_peers() if p.feed == ben_id.public_key)
        assert record.source == "pub"
    finally:
        await runner.close(ana)
        await ben.close()
        ana_store.close()
        ben_store.close()

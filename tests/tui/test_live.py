"""Live updates: a second real peer (a Node on the same event loop, real loopback
sockets, real handshake) posts, and the open app shows it without a key press."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from p2pcrew.feed import content as c
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.replicate.address import Address
from p2pcrew.replicate.node import Node
from p2pcrew.tui.app import StoreChanged
from p2pcrew.tui.facade import NetworkOptions
from p2pcrew.tui.screens.peers import PeersScreen
from p2pcrew.tui.widgets.thread_list import ThreadList
from tests.tui import fixture as fx
from tests.tui.conftest import Recorder, make_app, settle
from tests.tui.screen_text import screen_text


def ben_node(tmp_path: Path, fixture: fx.Fixture) -> Node:
    """Ben's own store, holding his feed as Ana's store has it (so he is in the crew)."""
    ana_store = SqliteStore(fixture.home.store_dir)
    try:
        latest = ana_store.latest_seqs()[fx.BEN.public_key]
        own = ana_store.raw_range(fx.BEN.public_key, 1, latest)
    finally:
        ana_store.close()
    store = SqliteStore(tmp_path / "ben")
    node = Node(store, fx.BEN)  # attaches the keyring first, so the envelopes open
    store.ingest(own)
    node.refresh_scope()
    return node


async def wait_until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


async def test_a_peers_post_appears_without_a_key_press(
    tmp_path: Path, fixture_home: fx.Fixture, recorder: Recorder
) -> None:
    ben = ben_node(tmp_path, fixture_home)
    await ben.start()
    host, port = await ben.listen("127.0.0.1", 0)
    network = NetworkOptions(
        host="127.0.0.1",
        port=0,
        lan=False,
        connect=(Address("tcp", host, port, fx.BEN.public_key),),
    )
    app = make_app(fixture_home.home, network=network)
    try:
        async with app.run_test(size=(80, 24), message_hook=recorder) as pilot:
            await settle(pilot)
            await wait_until(pilot, lambda: "1 peer connected" in screen_text(app))
            ben.publish([c.Post(text="Live from Ben", crew=fixture_home.garden, time=fx.NOW)])
            await wait_until(pilot, lambda: "Live from Ben" in screen_text(app))
            rows = app.screen.query_one(ThreadList).rows
            assert rows[0].title == "Live from Ben" and rows[0].unread == "• 1 new"
            assert recorder.of(StoreChanged)

            # A burst is a few refreshes, not one per entry.
            before = app.refreshes
            ben.publish(
                [
                    c.Post(text=f"burst {i}", crew=fixture_home.garden, time=fx.NOW)
                    for i in range(300)
                ]
            )
            await wait_until(pilot, lambda: "burst 299" in screen_text(app))
            await settle(pilot)
            assert app.refreshes - before <= 10, app.refreshes - before

            await pilot.press("p")  # the peers screen: who, found how, in sync
            await settle(pilot)
            assert isinstance(app.screen, PeersScreen)
            await wait_until(pilot, lambda: "connected, in sync" in screen_text(app))
            row = next(line for line in screen_text(app).splitlines() if " Ben " in line)
            assert "manual" in row and "↓" in row
    finally:
        await ben.close()
        ben.store.close()

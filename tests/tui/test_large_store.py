"""The app starts on a store with 100,000 entries and shows its first screen quickly."""

from __future__ import annotations

import time
from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from p2pcrew.tui.screens.main import MainScreen
from p2pcrew.tui.widgets.thread_list import ThreadList
from tests.tui import fixture as fx
from tests.tui.conftest import make_app, settle
from tests.tui.screen_text import screen_text

ENTRIES = 100_000
THREADS = 1_000
GROUP = 10_000


def fill(home: Home) -> None:
    """The fixture, then 100,000 public posts by Ben: 1,000 threads of 100 posts."""
    fx.build(home)
    store = SqliteStore(home.store_dir)
    try:
        roots = store.append(
            fx.BEN.signing_key,
            [
                c.encode_content(c.Post(text=f"thread {i}", time=fx.NOW - fx.DAY))
                for i in range(THREADS)
            ],
        )
        ids = [e.id for e in roots]
        for start in range(0, ENTRIES - THREADS, GROUP):
            count = min(GROUP, ENTRIES - THREADS - start)
            store.append(
                fx.BEN.signing_key,
                [
                    c.encode_content(
                        c.Post(
                            text=f"reply {start + i}",
                            root=ids[(start + i) % THREADS],
                            time=fx.NOW - fx.HOUR,
                        )
                    )
                    for i in range(count)
                ],
            )
        assert store.count() >= ENTRIES
    finally:
        store.close()


async def test_first_screen_on_a_large_store(tmp_path: Path) -> None:
    home = Home(tmp_path / "big")
    fill(home)
    started = time.monotonic()
    app = make_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        shown = time.monotonic() - started
        assert isinstance(app.screen, MainScreen)
        assert "Seed swap on Saturday" in screen_text(app)
        await pilot.press("tab", "down", "down")  # the public pseudo-crew
        await settle(pilot)
        rows = app.screen.query_one(ThreadList).rows
        assert len(rows) == 200 and rows[0].meta.startswith("Ben · 99 replies")
    assert shown < 5, f"first screen after {shown:.1f}s"

"""The terminal app: time from launch to its first full screen, and opening a thread.

* first screen with 100,000 and with 1,000,000 entries stored (the million-entry
  store is the feed group's cached fixture, copied into a fresh home): from creating
  the app (which opens the store and starts the node on loopback) until the main
  screen is drawn and every load worker has finished. Target: under 1 s at a million.
* opening a thread with 500 replies (building its view from the store).
Headless (Textual's test driver at 80x24), so it measures our work, not a terminal.
"""

from __future__ import annotations

import asyncio
import shutil
import time

from benchmarks import Context, Row, feed_bench
from p2pcrew.feed import content as c
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.home import Home
from p2pcrew.queries import Queries

GROUP = "tui"
ROW_NAMES = (
    "app first screen, 100,000 entries",
    "app first screen, 1,000,000 entries",
    "open a 500-reply thread",
)


def _first_screen(home: Home) -> float:
    from tests.tui.conftest import make_app, settle

    async def run() -> float:
        started = time.perf_counter()
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            return time.perf_counter() - started

    return asyncio.run(run())


def _hundred_thousand(home: Home, count: int) -> bytes:
    """The app's fixture plus ``count`` public posts; returns a 500-reply thread's root."""
    from tests.tui import fixture as fx

    fx.build(home)
    store = SqliteStore(home.store_dir)
    author = fx.BEN.signing_key
    roots = store.append(
        author, [c.encode_content(c.Post(text=f"t{i}", time=fx.NOW)) for i in range(100)]
    )
    [big] = store.append(author, [c.encode_content(c.Post(text="big thread", time=fx.NOW))])
    replies = [
        c.encode_content(c.Post(text=f"reply {i}", root=big.id, time=fx.NOW)) for i in range(500)
    ]
    store.append(author, replies)
    rest = count - 601
    for start in range(0, rest, 10_000):
        n = min(10_000, rest - start)
        store.append(
            author,
            [
                c.encode_content(c.Post(text=f"r{start + i}", root=roots[i % 100].id, time=fx.NOW))
                for i in range(n)
            ],
        )
    store.close()
    return big.id


def run(ctx: Context) -> list[Row]:
    rows = []
    with ctx.tempdir() as tmp:
        count = 5_000 if ctx.config.quick else 100_000
        home = Home(tmp / "hundred")
        ctx.progress(f"building a {count:,}-entry home for the app")
        big = _hundred_thousand(home, count)
        small = ctx.repeat("app first screen", lambda: _first_screen(home))
        rows.append(
            Row(
                ROW_NAMES[0],
                small.median * 1000,
                "ms",
                None,
                None,
                f"{count:,} entries; {small.spread()}",
            )
        )
        if ctx.config.quick:
            rows.append(
                Row(
                    ROW_NAMES[1],
                    small.median * 1000,
                    "ms",
                    None,
                    None,
                    "quick: same store as above",
                )
            )
        else:
            sizes = feed_bench.sizes_for(ctx.config)
            with feed_bench.big_store(ctx, sizes) as (path, _note):
                million = Home(tmp / "million")
                million.root.mkdir()
                ctx.progress("copying the million-entry store into a fresh home")
                shutil.copy(path / "p2pcrew.sqlite3", million.root / "p2pcrew.sqlite3")
                save_identity(Identity.generate(), million.identity_path)
            SqliteStore(million.store_dir).close()  # migrate once, untimed
            big_run = ctx.repeat("app first screen, 1M", lambda: _first_screen(million))
            rows.append(
                Row(
                    ROW_NAMES[1],
                    big_run.median * 1000,
                    "ms",
                    None,
                    None,
                    f"1,000,000 entries, 1,000 feeds; target < 1,000 ms; {big_run.spread()}",
                )
            )
        store = SqliteStore(home.store_dir, readonly=True)
        q = Queries(store, b"\0" * 32)

        def open_thread() -> float:
            start = time.perf_counter()
            view = q.thread(big)
            assert view is not None and len(view.lines) == 500
            return time.perf_counter() - start

        thread = ctx.repeat("open 500-reply thread", open_thread)
        store.close()
        rows.append(Row(ROW_NAMES[2], thread.median * 1000, "ms", None, None, thread.spread()))
    return rows

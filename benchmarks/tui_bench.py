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
from pathlib import Path

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
    "app event-loop stall while 10,000 arrive",
)
ARRIVING = 10_000


def _first_screen(home: Home) -> float:
    from tests.tui.conftest import make_app, settle

    async def run() -> float:
        started = time.perf_counter()
        app = make_app(home)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            return time.perf_counter() - started

    return asyncio.run(run())


def _responsiveness(tmp: Path, arriving: int) -> tuple[float, float, float, int]:
    """(max stall s, p99 stall s, seconds until all arrived, refreshes) for the open app
    while a real peer on loopback pushes ``arriving`` crew posts to it."""
    from p2pcrew.replicate.address import Address
    from p2pcrew.tui.facade import NetworkOptions
    from tests.tui import fixture as fx
    from tests.tui.conftest import make_app, settle
    from tests.tui.test_live import ben_node

    fixture = fx.build(Home(tmp / "ana"))
    ben = ben_node(tmp, fixture)
    for start in range(0, arriving, 1000):
        ben.publish(
            [
                c.Post(text=f"arriving {start + i}", crew=fixture.garden, time=fx.NOW)
                for i in range(1000)
            ]
        )
    target = ben.store.latest_seqs()[fx.BEN.public_key]

    async def run() -> tuple[float, float, float, int]:
        await ben.start()
        host, port = await ben.listen("127.0.0.1", 0)
        network = NetworkOptions(
            host="127.0.0.1",
            port=0,
            lan=False,
            connect=(Address("tcp", host, port, fx.BEN.public_key),),
        )
        stalls: list[float] = []
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def probe() -> None:  # the app's loop: how late does a 10 ms timer fire?
            while not done.is_set():
                t = loop.time()
                await asyncio.sleep(0.01)
                stalls.append(loop.time() - t - 0.01)

        prober = asyncio.create_task(probe())
        started = time.perf_counter()
        app = make_app(fixture.home, network=network)
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                while app.facade.store.latest_seqs().get(fx.BEN.public_key, 0) < target:
                    await pilot.pause(0.05)
                    if time.perf_counter() - started > 120:
                        raise RuntimeError("entries did not arrive in 120 s")
                arrived = time.perf_counter() - started
                done.set()
                await settle(pilot)
                refreshes = app.refreshes
        finally:
            done.set()
            await prober
            await ben.close()
            ben.store.close()
        stalls.sort()
        p99 = stalls[int(len(stalls) * 0.99)] if stalls else 0.0
        return (stalls[-1] if stalls else 0.0), p99, arrived, refreshes

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
        arriving = 1_000 if ctx.config.quick else ARRIVING
        ctx.progress(f"app open while {arriving:,} entries arrive from a peer")
        worst, p99, seconds, refreshes = _responsiveness(tmp / "live", arriving)
        rows.append(
            Row(
                ROW_NAMES[3],
                worst * 1000,
                "ms",
                None,
                None,
                f"{arriving:,} crew posts pushed by a real peer on loopback; p99 stall "
                f"{p99 * 1000:.0f} ms; all arrived in {seconds:.1f} s; "
                f"{refreshes} screen refreshes",
            )
        )
    return rows

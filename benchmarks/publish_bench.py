"""Publishing own entries: one durable commit each, and group commit under concurrency.

* ``publish, one commit each``: ``Store.append`` with one ~300-byte post per call, each
  its own fsynced transaction (what a lone CLI ``post`` costs).
* ``publish, group commit``: 64 concurrent publishers in one node, each publishing one
  entry at a time; concurrent calls share durable transactions (``GroupCommitter``).
  Target from the brief: 15,000/s. Ratio: to raw single-thread Ed25519 signing.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks import Context, Row, paired_row
from p2pcrew.feed import content as c
from p2pcrew.feed.group_commit import GroupCommitter
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.sqlite_store import SqliteStore

GROUP = "publish"
ROW_NAMES = ("publish, one commit each", "publish, group commit (64 publishers)")
TEXT = "Can someone lend me a drill on Saturday? " * 6  # ~250 characters, ~300-byte payload


def _payloads(n: int) -> list[bytes]:
    return [
        c.encode_content(c.Post(text=f"{TEXT}{i}", time=1_700_000_000_000 + i)) for i in range(n)
    ]


def _single(ctx: Context, n: int) -> float:
    with ctx.tempdir() as tmp:
        store = SqliteStore(tmp)
        key = Identity.generate().signing_key
        payloads = _payloads(n)
        start = time.perf_counter()
        for payload in payloads:
            store.append(key, [payload])
        elapsed = time.perf_counter() - start
        store.close()
        return n / elapsed


def _grouped(ctx: Context, n: int, publishers: int = 64) -> float:
    with ctx.tempdir() as tmp:
        store = SqliteStore(tmp)
        key = Identity.generate().signing_key
        payloads = _payloads(n)

        async def run() -> float:
            committer = GroupCommitter(lambda batch: store.append(key, batch))
            share = n // publishers

            async def publisher(k: int) -> None:
                for payload in payloads[k * share : (k + 1) * share]:
                    await committer.append([payload])

            start = time.perf_counter()
            await asyncio.gather(*(publisher(k) for k in range(publishers)))
            elapsed = time.perf_counter() - start
            await committer.close()
            return share * publishers / elapsed

        rate = asyncio.run(run())
        store.close()
        return rate


def run(ctx: Context) -> list[Row]:
    single_n = 300 if ctx.config.quick else 2_000
    grouped_n = 6_400 if ctx.config.quick else 64_000
    sign = ctx.limits.sign_1t
    v1, r1 = ctx.repeat_vs("publish one commit each", lambda: _single(ctx, single_n), sign)
    v2, r2 = ctx.repeat_vs("publish group commit", lambda: _grouped(ctx, grouped_n), sign)
    return [
        paired_row(ROW_NAMES[0], v1, r1, "entries/s", sign, f"{single_n:,} posts, fsync each"),
        paired_row(
            ROW_NAMES[1], v2, r2, "entries/s", sign, f"{grouped_n:,} posts; target 15,000/s"
        ),
    ]

"""Group commit: concurrent publishes share transactions, order and errors preserved."""

from __future__ import annotations

import asyncio
from pathlib import Path

from p2pcrew.feed.entry import MAX_PAYLOAD_SIZE
from p2pcrew.feed.errors import EntryTooLarge
from p2pcrew.feed.group_commit import GroupCommitter
from p2pcrew.feed.sqlite_store import SqliteStore
from tests.feed.helpers import key


async def test_concurrent_publishers_share_commits_and_keep_their_entries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    k = key(5)
    committer = GroupCommitter(lambda payloads: store.append(k, payloads))

    async def publisher(n: int) -> list[bytes]:
        got = []
        for i in range(20):
            [entry] = await committer.append([b"p%d-%d" % (n, i)])
            got.append(entry.payload_hash)
        return got

    results = await asyncio.gather(*(publisher(n) for n in range(16)))
    await committer.close()
    assert store.feed(bytes(k.verify_key)).latest_seq == 320  # type: ignore[union-attr]
    assert committer.commits < 320  # grouped
    assert all(len(r) == 20 for r in results)
    store.close()


async def test_a_bad_payload_fails_only_its_caller(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    k = key(6)
    committer = GroupCommitter(lambda payloads: store.append(k, payloads))
    good = [committer.append([b"ok %d" % i]) for i in range(5)]
    bad = committer.append([bytes(MAX_PAYLOAD_SIZE + 1)])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    await committer.close()
    assert isinstance(results[-1], EntryTooLarge)
    assert all(isinstance(r, list) for r in results[:-1])
    assert store.feed(bytes(k.verify_key)).latest_seq == 5  # type: ignore[union-attr]
    store.close()

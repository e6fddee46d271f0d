"""The write-ahead log is copied into the database by the checkpoint thread.

The writer's own automatic checkpoint is only a far-off backstop, so these tests
show the background thread really does the copying: after a few small commits
(nowhere near the backstop) the database file *alone*, copied without its -wal
file, already holds every committed entry.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.checkpointer import BACKSTOP_PAGES, Checkpointer
from p2pcrew.feed.sqlite_store import DB_NAME, SqliteStore
from tests.feed.helpers import key

WAIT = 10.0


def _wait_for(cond: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _entries_in_file_alone(db: Path, tmp: Path) -> int:
    copy = tmp / "copy.sqlite"
    shutil.copyfile(db, copy)  # no -wal beside it: only checkpointed pages count
    with sqlite3.connect(copy) as conn:
        (n,) = conn.execute("SELECT count(*) FROM entries").fetchone()
    return int(n)


def test_commits_reach_the_database_file_without_the_writers_checkpoint(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "store")
    try:
        (threshold,) = store._db.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert threshold == BACKSTOP_PAGES
        signer = key(1)
        for i in range(5):
            posts = [c.encode_content(c.Post(text=f"p{i}-{j}", time=1)) for j in range(10)]
            store.append(signer, posts)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        db = tmp_path / "store" / DB_NAME
        _wait_for(lambda: _entries_in_file_alone(db, tmp_path) == 50, "50 entries in the file")
        assert checkpointer.checkpoints >= 1
        assert checkpointer.error is None
    finally:
        store.close()


def test_a_reader_holding_a_snapshot_does_not_block_the_writer(tmp_path: Path) -> None:
    """PASSIVE checkpoints stop at a reader's snapshot instead of waiting for it."""
    store = SqliteStore(tmp_path / "store")
    signer = key(2)
    store.append(signer, [c.encode_content(c.Post(text="first", time=1))])
    reader = SqliteStore(tmp_path / "store", readonly=True)
    try:
        reader._db.execute("BEGIN")
        assert reader.count() == 1  # the snapshot is now pinned
        started = time.monotonic()
        for i in range(20):
            store.append(signer, [c.encode_content(c.Post(text=f"more {i}", time=1))])
        assert time.monotonic() - started < WAIT
        assert reader.count() == 1
        reader._db.execute("COMMIT")
        assert reader.count() == 21
    finally:
        reader.close()
        store.close()


def test_close_stops_the_thread_and_the_store_reopens(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store")
    checkpointer = store._checkpointer
    assert checkpointer is not None
    store.append(key(3), [c.encode_content(c.Post(text="kept", time=1))])
    store.close()
    assert not checkpointer._thread.is_alive()
    again = SqliteStore(tmp_path / "store")
    try:
        assert again.count() == 1
    finally:
        again.close()


def test_a_checkpoint_failure_is_recorded_not_raised(tmp_path: Path) -> None:
    """A database it cannot open leaves the error for inspection; the writer goes on."""
    missing = tmp_path / "no" / "such" / "dir" / DB_NAME
    checkpointer = Checkpointer(missing, interval=0.0)
    try:
        checkpointer.committed()
        _wait_for(lambda: checkpointer.error is not None, "an error")
        assert "unable to open" in str(checkpointer.error)
    finally:
        checkpointer.close()

"""SQLite-specific behaviour: the lock, read-only access beside a writer, migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcrew.feed.sqlite_store import (
    DB_NAME,
    SqliteStore,
    StoreError,
    StoreLocked,
    StoreMissing,
    migrations,
)
from tests.feed.helpers import key

ROOT = Path(__file__).resolve().parents[2]


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    try:
        code = (
            "from pathlib import Path\n"
            "from p2pcrew.feed.sqlite_store import SqliteStore, StoreLocked\n"
            f"try:\n    SqliteStore(Path({str(tmp_path)!r}))\n"
            "except StoreLocked as e:\n    print('LOCKED', e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        assert out.stdout.startswith("LOCKED"), out.stderr
        assert "only one writing process" in out.stdout
    finally:
        store.close()


def test_second_writer_in_same_process_is_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    with pytest.raises(StoreLocked):
        SqliteStore(tmp_path)
    store.close()
    SqliteStore(tmp_path).close()  # released on close


def test_reader_works_beside_writer(tmp_path: Path) -> None:
    writer = SqliteStore(tmp_path)
    writer.append(key(1), [b"a", b"b"])
    reader = SqliteStore(tmp_path, readonly=True)
    assert reader.latest_seqs() == {bytes(key(1).verify_key): 2}
    writer.append(key(1), [b"c"])
    assert reader.latest_seqs() == {bytes(key(1).verify_key): 3}
    with pytest.raises(StoreError, match="read-only"):
        reader.append(key(1), [b"d"])
    reader.close()
    writer.close()


def test_readonly_open_of_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreMissing, match="p2pcrew init"):
        SqliteStore(tmp_path / "nothing", readonly=True)


def test_migrations_are_numbered_and_recorded(tmp_path: Path) -> None:
    numbers = [n for n, _, _ in migrations()]
    assert numbers == list(range(1, len(numbers) + 1))
    SqliteStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == numbers[-1]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version={numbers[-1] + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(tmp_path)


def test_thread_summaries_are_backfilled_by_migration_004(tmp_path: Path) -> None:
    from p2pcrew.feed import content as c

    store = SqliteStore(tmp_path)
    k = key(1)
    me = bytes(key(9).verify_key)
    [root] = store.append(k, [c.encode_content(c.Post(text="root", time=1))])
    store.append(
        k, [c.encode_content(c.Post(text=f"r{i}", root=root.id, time=2)) for i in range(3)]
    )
    before = [(t.root.entry.id, t.replies, t.last_order) for t in store.thread_stats(None, me)]
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)  # roll the schema back to before 004
    db.execute("DROP TABLE threads")
    db.execute("DROP TABLE profiles")
    db.execute("DROP TABLE contacts")
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    store = SqliteStore(tmp_path)
    after = [(t.root.entry.id, t.replies, t.last_order) for t in store.thread_stats(None, me)]
    assert after == before == [(root.id, 3, before[0][2])]
    assert store.thread_stats(None, me)[0].unread == 4
    store.close()

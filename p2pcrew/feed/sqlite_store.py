"""SQLite backend: WAL, one writer connection, numbered migrations, a process lock.

Why these choices:
- WAL lets read-only commands (``log``, ``feeds``, ``show``) run beside a writing
  node. Only one connection ever writes: the SQLite shipped here predates the fix
  for a WAL-reset race that needs two writing connections.
- A second *writing* process on the same data directory would be that race, so
  writers take an exclusive ``flock`` on ``store.lock`` and a second one refuses to
  start with a clear message. Readers take no lock.
- Own appends commit with ``synchronous=FULL`` (the WAL is fsynced before the
  commit returns); received batches use ``NORMAL``, which survives a process crash
  and loses at most the last batches on power loss, which peers will resend.
- Schema changes are numbered ``migrations/NNN_name.sql`` files, each applied in its
  own transaction and recorded in ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import IO, Any

from p2pcrew import codec
from p2pcrew.feed.checkpointer import BACKSTOP_PAGES, Checkpointer
from p2pcrew.feed.entry import Entry, decode_entry
from p2pcrew.feed.indexing import Indexed, IndexRow
from p2pcrew.feed.store import (
    FeedInfo,
    ForkProof,
    PeerRecord,
    Store,
    StoredEntry,
    StoreError,
    ThreadStats,
    now_ms,
    take_within,
)
from p2pcrew.feed.validate import Tip
from p2pcrew.feed.verify import Verifier

DB_NAME = "p2pcrew.sqlite3"
LOCK_NAME = "store.lock"


class StoreLocked(StoreError):
    """Another process is writing to this data directory."""


class StoreMissing(StoreError, FileNotFoundError):
    """No store exists at the path given to a read-only open."""


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every packaged migration, in order."""
    found = []
    for item in resources.files("p2pcrew.feed.migrations").iterdir():
        name = item.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), name, item.read_text(encoding="utf-8")))
    return sorted(found)


class SqliteStore(Store):
    """A store in ``directory``; ``readonly`` opens never write, lock or migrate."""

    def __init__(
        self, directory: Path, *, readonly: bool = False, verifier: Verifier | None = None
    ) -> None:
        super().__init__(verifier)
        self.directory = Path(directory)
        self.readonly = readonly
        self._mutex = threading.RLock()
        self._lock_file: IO[str] | None = None
        self._checkpointer: Checkpointer | None = None
        self._txn_owner: int | None = None
        self._pending_content: list[tuple[object, ...]] = []
        self._pending_threads: list[tuple[object, ...]] = []
        """Index rows written in one ``executemany`` per transaction (``_flush_index``)."""
        self._durable = True
        self._any_tombstones = True  # until the first look says otherwise
        path = self.directory / DB_NAME
        if readonly:
            if not path.exists():
                raise StoreMissing(
                    f"no p2pcrew store in {self.directory}; run `p2pcrew init` first"
                )
            self._db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            self._check_schema_version()
        else:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock_file = _take_lock(self.directory / LOCK_NAME)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            # The random 32-byte id index outgrows the default 2 MB cache on big stores.
            self._db.execute("PRAGMA cache_size=-65536")
            self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            self._migrate()
            self._checkpointer = Checkpointer(path)
        self._db.execute("PRAGMA busy_timeout=5000")
        # Only the writer knows when tombstones appear; a reader always looks.
        self._any_tombstones = readonly or self._one("SELECT 1 FROM tombstones LIMIT 1") is not None

    # ---- lifecycle -------------------------------------------------------

    def close(self) -> None:
        with self._mutex:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            self._db.close()
            self.verifier.close()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def _migrate(self) -> None:
        (current,) = self._db.execute("PRAGMA user_version").fetchone()
        known = migrations()
        if known and current > known[-1][0]:
            raise StoreError(
                f"this store has schema version {current}, newer than this p2pcrew "
                f"understands ({known[-1][0]}); upgrade p2pcrew"
            )
        for number, _name, sql in known:
            if number <= current:
                continue
            backfill = {5: "about", 6: "contact"}.get(number)
            # executescript would COMMIT on its own; run statements in one transaction.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(sql):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if backfill is not None:
                self._backfill(backfill)

    def _check_schema_version(self) -> None:
        (current,) = self._db.execute("PRAGMA user_version").fetchone()
        known = migrations()[-1][0]
        if current != known:
            raise StoreError(
                f"store schema version {current} differs from {known}; open it once "
                "with a writing command (for example `p2pcrew whoami` after upgrading)"
            )

    # ---- transactions ----------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[None]:
        if self.readonly:
            raise StoreError("this store was opened read-only")
        with self._mutex:
            if durable != self._durable:
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            self._db.execute("BEGIN IMMEDIATE")
            self._txn_owner = threading.get_ident()
            try:
                yield
                self._flush_index()
            except BaseException:
                self._pending_content.clear()
                self._pending_threads.clear()
                self._txn_owner = None
                self._db.execute("ROLLBACK")
                raise
            self._txn_owner = None
            self._db.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.committed()

    # ---- primitives -----------------------------------------------------

    def _feed(self, author: bytes) -> FeedInfo | None:
        row = self._one(
            "SELECT author, latest_seq, latest_id, forked FROM feeds WHERE author=?", author
        )
        return FeedInfo(row[0], row[1], row[2], bool(row[3])) if row else None

    def _get(self, entry_id: bytes) -> StoredEntry | None:
        row = self._one(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext "
            "FROM entries e LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE e.id=?",
            entry_id,
        )
        return _stored(row) if row else None

    def _entry_at(self, author: bytes, seq: int) -> Entry | None:
        row = self._one("SELECT header FROM entries WHERE author=? AND seq=?", author, seq)
        return decode_entry(row[0]) if row else None

    def _entry_id_at(self, author: bytes, seq: int) -> bytes | None:
        row = self._one("SELECT id FROM entries WHERE author=? AND seq=?", author, seq)
        return bytes(row[0]) if row else None

    def _insert(self, entry: Entry, payload: bytes | None, indexed: Indexed) -> None:
        cur = self._db.execute(
            "INSERT INTO entries(author, seq, id, header, payload, received_at) "
            "VALUES (?,?,?,?,?,?)",
            (entry.author, entry.seq, entry.id, entry.header, payload, now_ms()),
        )
        rowid = cur.lastrowid
        if indexed.sealed:
            self._db.execute("INSERT INTO sealed(entry_rowid) VALUES (?)", (rowid,))
        else:
            self._index(rowid, entry.id, indexed)

    def _flush_index(self) -> None:
        """Write the content and thread rows gathered in this transaction.

        One ``executemany`` per table instead of two ``execute`` calls per entry: on
        bulk ingest each call was a GIL hand-off the verify threads had to wait for.
        Called before COMMIT and by every method that reads these tables, so within a
        transaction nothing ever sees them stale. Only the thread that owns the
        transaction flushes: another thread's read must not write into it.
        """
        if self._txn_owner != threading.get_ident():
            return
        if self._pending_content:
            rows, self._pending_content = self._pending_content, []
            self._db.executemany(
                "INSERT INTO content(entry_rowid, type, claimed_time, root, parent, target, crew) "
                "VALUES (?,?,?,?,?,?,?)",
                rows,
            )
        if self._pending_threads:
            rows, self._pending_threads = self._pending_threads, []
            self._db.executemany(
                "INSERT INTO threads(root, crew, last_order, replies) VALUES (?,?,?,?) "
                "ON CONFLICT(root) DO UPDATE SET "
                "crew=CASE WHEN excluded.replies=0 THEN excluded.crew ELSE crew END, "
                "replies=replies+excluded.replies, "
                "last_order=max(last_order, excluded.last_order)",
                rows,
            )

    def _index(self, rowid: int | None, entry_id: bytes, indexed: Indexed) -> None:
        row = indexed.row
        if row is not None and row.type == "post":
            self._count_in_thread(rowid, entry_id, row)
        if row is not None and row.name is not None and row.crew is None:
            self._remember_name(entry_id, row.name)
        if row is not None and row.action is not None and row.target is not None:
            self._remember_contact(entry_id, row.target, row.action)
        if row is not None:
            self._pending_content.append(
                (rowid, row.type, row.claimed_time, row.root, row.parent, row.target, row.crew)
            )
        if indexed.plaintext is not None:
            self._db.execute(
                "INSERT INTO opened(entry_rowid, plaintext) VALUES (?,?)",
                (rowid, indexed.plaintext),
            )

    def _count_in_thread(self, rowid: int | None, entry_id: bytes, row: IndexRow) -> None:
        """Keep the thread summary current: a root starts one, a reply bumps it."""
        if row.root is None:  # replies 0 also tells the flush: this row sets the crew
            self._pending_threads.append((entry_id, row.crew, rowid, 0))
        else:
            self._pending_threads.append((row.root, row.crew, rowid, 1))

    def _remember_name(self, entry_id: bytes, name: str) -> None:
        self._db.execute(
            "INSERT INTO profiles(author, seq, name) SELECT author, seq, ? FROM entries "
            "WHERE id=? ON CONFLICT(author) DO UPDATE SET seq=excluded.seq, name=excluded.name "
            "WHERE excluded.seq > profiles.seq",
            (name, entry_id),
        )

    def _remember_contact(self, entry_id: bytes, target: bytes, action: str) -> None:
        self._db.execute(
            "INSERT INTO contacts(author, target, seq, action) SELECT author, ?, seq, ? "
            "FROM entries WHERE id=? ON CONFLICT(author, target) DO UPDATE SET "
            "seq=excluded.seq, action=excluded.action WHERE excluded.seq > contacts.seq",
            (target, action, entry_id),
        )

    def _backfill(self, content_type: str) -> None:
        """Migrations cannot decode CBOR in SQL: fill a summary table once, in Python."""
        self._flush_index()
        from p2pcrew.feed.indexing import index_row

        rows = self._all(
            "SELECT e.id, e.payload FROM content c JOIN entries e ON e.rowid=c.entry_rowid "
            "WHERE c.type=? AND c.crew IS NULL AND e.payload IS NOT NULL",
            content_type,
        )
        with self._transaction(durable=False):
            for entry_id, payload in rows:
                row = index_row(payload)
                if row is not None and row.name is not None:
                    self._remember_name(entry_id, row.name)
                if row is not None and row.action is not None and row.target is not None:
                    self._remember_contact(entry_id, row.target, row.action)

    def _sealed(self) -> list[tuple[int, Entry, bytes]]:
        rows = self._all(
            "SELECT s.entry_rowid, e.header, e.payload FROM sealed s "
            "JOIN entries e ON e.rowid = s.entry_rowid WHERE e.payload IS NOT NULL"
        )
        return [(r[0], decode_entry(r[1]), r[2]) for r in rows]

    def _unseal(self, rowid: int, indexed: Indexed) -> None:
        self._db.execute("DELETE FROM sealed WHERE entry_rowid=?", (rowid,))
        found = self._one("SELECT id FROM entries WHERE rowid=?", rowid)
        self._index(rowid, found[0] if found else b"", indexed)

    def _set_tip(self, author: bytes, tip: Tip) -> None:
        self._db.execute(
            "INSERT INTO feeds(author, latest_seq, latest_id) VALUES (?,?,?) "
            "ON CONFLICT(author) DO UPDATE SET latest_seq=excluded.latest_seq, "
            "latest_id=excluded.latest_id",
            (author, tip.seq, tip.id),
        )

    def _mark_forked(self, proof: ForkProof) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO forks(author, seq, first, second) VALUES (?,?,?,?)",
            (proof.author, proof.seq, proof.first, proof.second),
        )
        self._db.execute("UPDATE feeds SET forked=1 WHERE author=?", (proof.author,))

    def _tombstone_author(self, target: bytes) -> bytes | None:
        if not self._any_tombstones:
            return None  # most stores never saw a delete: skip a lookup per entry
        row = self._one("SELECT author FROM tombstones WHERE target=?", target)
        return bytes(row[0]) if row else None

    def _add_tombstone(self, target: bytes, author: bytes) -> None:
        self._any_tombstones = True
        self._db.execute(
            "INSERT OR IGNORE INTO tombstones(target, author) VALUES (?,?)", (target, author)
        )

    def _drop_payload(self, entry_id: bytes) -> None:
        self._flush_index()
        for table in ("content", "opened", "sealed"):
            self._db.execute(
                f"DELETE FROM {table} WHERE entry_rowid=(SELECT rowid FROM entries WHERE id=?)",  # noqa: S608 - fixed table names
                (entry_id,),
            )
        self._db.execute("UPDATE entries SET payload=NULL WHERE id=?", (entry_id,))

    # ---- reads ---------------------------------------------------------

    def feeds(self) -> list[FeedInfo]:
        rows = self._all("SELECT author, latest_seq, latest_id, forked FROM feeds ORDER BY author")
        return [FeedInfo(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def latest_seqs(self) -> dict[bytes, int]:
        return {r[0]: r[1] for r in self._all("SELECT author, latest_seq FROM feeds")}

    def get_at(self, author: bytes, seq: int) -> StoredEntry | None:
        row = self._one(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext "
            "FROM entries e LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE e.author=? AND e.seq=?",
            author,
            seq,
        )
        return _stored(row) if row else None

    def range(self, author: bytes, start: int = 1, end: int | None = None) -> list[StoredEntry]:
        last = end if end is not None else 2**62
        rows = self._all(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext "
            "FROM entries e LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE e.author=? AND e.seq BETWEEN ? AND ? ORDER BY e.seq",
            author,
            start,
            last,
        )
        return [_stored(r) for r in rows]

    def raw_range(
        self, author: bytes, start: int, end: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes | None]]:
        with self._mutex:
            cursor = self._db.execute(
                "SELECT header, payload FROM entries "
                "WHERE author=? AND seq BETWEEN ? AND ? ORDER BY seq",
                (author, start, end),
            )
            try:
                return take_within(cursor, max_bytes)  # one row per step: no read-ahead
            finally:
                cursor.close()

    def iter_feed(self, author: bytes, start: int = 1, batch: int = 1000) -> Iterator[StoredEntry]:
        while True:
            chunk = self.range(author, start, start + batch - 1)
            yield from chunk
            if len(chunk) < batch:
                return
            start += batch

    def forks(self) -> list[ForkProof]:
        rows = self._all("SELECT author, seq, first, second FROM forks ORDER BY author, seq")
        return [ForkProof(*r) for r in rows]

    def thread(self, root: bytes) -> list[StoredEntry]:
        self._flush_index()
        rows = self._all(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext "
            "FROM entries e LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE e.id=? UNION ALL "
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext FROM content c "
            "JOIN entries e ON e.rowid=c.entry_rowid "
            "LEFT JOIN opened o ON o.entry_rowid=e.rowid WHERE c.root=? ORDER BY 4",
            root,
            root,
        )
        return [_stored(r) for r in rows]

    def by_type(self, content_type: str, limit: int | None = None) -> list[StoredEntry]:
        self._flush_index()
        rows = self._all(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext FROM content c "
            "JOIN entries e ON e.rowid=c.entry_rowid LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE c.type=? AND c.crew IS NULL ORDER BY c.entry_rowid DESC LIMIT ?",
            content_type,
            -1 if limit is None else limit,
        )
        return [_stored(r) for r in rows]

    def referring(self, target: bytes, content_type: str | None = None) -> list[StoredEntry]:
        self._flush_index()
        rows = self._all(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext FROM content c "
            "JOIN entries e ON e.rowid=c.entry_rowid LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE c.target=? AND (? IS NULL OR c.type=?) ORDER BY c.entry_rowid",
            target,
            content_type,
            content_type,
        )
        return [_stored(r) for r in rows]

    def count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM entries")
        return int(row[0]) if row else 0

    def get_meta(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM meta WHERE key=?", key)
        return bytes(row[0]) if row and row[0] is not None else None

    def set_meta(self, key: str, value: bytes | None) -> None:
        with self._transaction(durable=True):
            if value is None:
                self._db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES (?,?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (key, value),
                )

    def crew_keys(self) -> dict[bytes, dict[int, bytes]]:
        keys: dict[bytes, dict[int, bytes]] = {}
        for crew, epoch, key in self._all("SELECT crew, epoch, key FROM crew_keys"):
            keys.setdefault(crew, {})[epoch] = key
        return keys

    def put_crew_keys(self, crew: bytes, keys: dict[int, bytes]) -> None:
        with self._mutex:
            self._db.executemany(
                "INSERT OR IGNORE INTO crew_keys(crew, epoch, key) VALUES (?,?,?)",
                [(crew, epoch, key) for epoch, key in keys.items()],
            )

    def crew_content(
        self, crew: bytes, content_type: str, limit: int | None = None
    ) -> list[StoredEntry]:
        self._flush_index()
        rows = self._all(
            "SELECT e.header, e.payload, e.received_at, e.rowid, o.plaintext FROM content c "
            "JOIN entries e ON e.rowid=c.entry_rowid LEFT JOIN opened o ON o.entry_rowid=e.rowid "
            "WHERE c.crew=? AND c.type=? ORDER BY c.entry_rowid DESC LIMIT ?",
            crew,
            content_type,
            -1 if limit is None else limit,
        )
        return [_stored(r) for r in rows]

    def thread_stats(self, crew: bytes | None, me: bytes, limit: int = 200) -> list[ThreadStats]:
        self._flush_index()
        rows = self._all(
            "SELECT t.replies, t.last_order, coalesce(m.seen_order, 0), "
            "e.header, e.payload, e.received_at, e.rowid, o.plaintext FROM threads t "
            "JOIN entries e ON e.id = t.root LEFT JOIN opened o ON o.entry_rowid = e.rowid "
            "LEFT JOIN read_marks m ON m.target = t.root "
            "WHERE t.crew IS ? ORDER BY t.last_order DESC LIMIT ?",
            crew,
            limit,
        )
        out = []
        for replies, last, seen, *entry in rows:
            root = _stored(tuple(entry))
            unread = self._unread_replies(root.entry.id, seen, me)
            unread += int(root.order > seen and root.entry.author != me)
            out.append(ThreadStats(root, replies, last, unread))
        return out

    def _unread_replies(self, root: bytes, seen: int, me: bytes) -> int:
        self._flush_index()
        if seen == 0:
            row = self._one(
                "SELECT COUNT(*) FROM content c JOIN entries e ON e.rowid = c.entry_rowid "
                "WHERE c.root = ? AND c.type = 'post' AND e.author != ?",
                root,
                me,
            )
        else:
            row = self._one(
                "SELECT COUNT(*) FROM content c JOIN entries e ON e.rowid = c.entry_rowid "
                "WHERE c.root = ? AND c.type = 'post' AND c.entry_rowid > ? AND e.author != ?",
                root,
                seen,
                me,
            )
        return int(row[0]) if row else 0

    def profile_names(self) -> dict[bytes, str]:
        return {r[0]: r[1] for r in self._all("SELECT author, name FROM profiles")}

    def contact_actions(self) -> dict[bytes, dict[bytes, str]]:
        graph: dict[bytes, dict[bytes, str]] = {}
        for author, target, action in self._all("SELECT author, target, action FROM contacts"):
            graph.setdefault(author, {})[target] = action
        return graph

    def mark_read(self, target: bytes, order: int) -> None:
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT INTO read_marks(target, seen_order) VALUES (?,?) ON CONFLICT(target) "
                "DO UPDATE SET seen_order=max(seen_order, excluded.seen_order)",
                (target, order),
            )

    def read_mark(self, target: bytes) -> int:
        row = self._one("SELECT seen_order FROM read_marks WHERE target=?", target)
        return int(row[0]) if row else 0

    def peer_clock(self, peer: bytes) -> tuple[dict[bytes, int], dict[bytes, int]]:
        row = self._one("SELECT received, sent FROM peer_clocks WHERE peer=?", peer)
        if row is None:
            return {}, {}
        return _clock(row[0]), _clock(row[1])

    def save_peer_clock(
        self, peer: bytes, received: dict[bytes, int], sent: dict[bytes, int]
    ) -> None:
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT INTO peer_clocks(peer, received, sent) VALUES (?,?,?) "
                "ON CONFLICT(peer) DO UPDATE SET received=excluded.received, sent=excluded.sent",
                (peer, _clock_bytes(received), _clock_bytes(sent)),
            )

    def known_peers(self) -> list[PeerRecord]:
        rows = self._all(
            "SELECT address, feed, source, last_connected, last_error FROM peers ORDER BY address"
        )
        return [PeerRecord(*r) for r in rows]

    def save_peer(self, record: PeerRecord) -> None:
        with self._transaction(durable=False):
            self._db.execute(
                "INSERT INTO peers(address, feed, source, last_connected, last_error) "
                "VALUES (?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET feed=excluded.feed, "
                # A pub stays a pub: `sync` or a redial through it must not relabel it.
                "source=CASE WHEN peers.source='pub' THEN 'pub' ELSE excluded.source END, "
                "last_connected=coalesce(excluded.last_connected, "
                "last_connected), last_error=excluded.last_error",
                (
                    record.address,
                    record.feed,
                    record.source,
                    record.last_connected,
                    record.last_error,
                ),
            )

    def integrity_check(self) -> list[str]:
        """SQLite's own structural check: ``["ok"]`` when the file is sound."""
        return [r[0] for r in self._all("PRAGMA integrity_check")]

    # ---- helpers ---------------------------------------------------------

    def _one(self, sql: str, *args: object) -> tuple[Any, ...] | None:
        with self._mutex:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with self._mutex:
            return self._db.execute(sql, args).fetchall()


def _stored(row: tuple[Any, ...]) -> StoredEntry:
    header, payload, received_at, order, plaintext = row
    return StoredEntry(decode_entry(header), payload, received_at, order, plaintext)


def _clock_bytes(clock: dict[bytes, int]) -> bytes:
    return codec.encode([[feed, value] for feed, value in sorted(clock.items())])


def _clock(data: bytes) -> dict[bytes, int]:
    try:
        return {bytes(feed): int(value) for feed, value in codec.decode(data)}
    except (codec.CodecError, TypeError, ValueError):
        return {}  # a damaged clock only costs one full notes exchange


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def _take_lock(path: Path) -> IO[str]:
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the store's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreLocked(
            f"{path.parent} is in use by p2pcrew (pid {holder}); only one writing process "
            "may use a data directory. Stop it, or run this command through it"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle

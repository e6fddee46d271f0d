"""In-memory backend for fast tests: the same decisions as SQLite, held in dicts.

Transactions snapshot the dictionaries and restore them on error, which is
expensive but honest: the contract suite relies on all-or-nothing batches.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from p2pcrew.feed.entry import Entry
from p2pcrew.feed.indexing import Indexed, IndexRow
from p2pcrew.feed.store import (
    FeedInfo,
    ForkProof,
    PeerRecord,
    Store,
    StoredEntry,
    ThreadStats,
    now_ms,
    take_within,
)
from p2pcrew.feed.validate import Tip
from p2pcrew.feed.verify import Verifier


@dataclass(slots=True)
class _Row:
    entry: Entry
    payload: bytes | None
    received_at: int
    order: int
    index: IndexRow | None
    plaintext: bytes | None = None
    sealed: bool = False

    def stored(self) -> StoredEntry:
        return StoredEntry(self.entry, self.payload, self.received_at, self.order, self.plaintext)


class MemoryStore(Store):
    def __init__(self, verifier: Verifier | None = None) -> None:
        super().__init__(verifier)
        self._feeds: dict[bytes, FeedInfo] = {}
        self._rows: dict[bytes, _Row] = {}
        self._by_seq: dict[tuple[bytes, int], bytes] = {}
        self._forks: dict[tuple[bytes, int], ForkProof] = {}
        self._tombstones: dict[bytes, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self._clocks: dict[bytes, tuple[dict[bytes, int], dict[bytes, int]]] = {}
        self._crew_keys: dict[bytes, dict[int, bytes]] = {}
        self._by_order: dict[int, bytes] = {}
        self._marks: dict[bytes, int] = {}
        self._peers: dict[str, PeerRecord] = {}
        self._counter = itertools.count(1)

    def close(self) -> None:
        self.verifier.close()

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[None]:
        saved = (
            dict(self._feeds),
            dict(self._by_seq),
            dict(self._forks),
            dict(self._tombstones),
            dict(self._meta),
        )
        rows = {k: copy.copy(v) for k, v in self._rows.items()}
        try:
            yield
        except BaseException:
            self._feeds, self._by_seq, self._forks, self._tombstones, self._meta = saved
            self._rows = rows
            raise

    def _feed(self, author: bytes) -> FeedInfo | None:
        return self._feeds.get(author)

    def _get(self, entry_id: bytes) -> StoredEntry | None:
        row = self._rows.get(entry_id)
        return row.stored() if row else None

    def _entry_at(self, author: bytes, seq: int) -> Entry | None:
        entry_id = self._by_seq.get((author, seq))
        return self._rows[entry_id].entry if entry_id else None

    def _entry_id_at(self, author: bytes, seq: int) -> bytes | None:
        return self._by_seq.get((author, seq))

    def _insert(self, entry: Entry, payload: bytes | None, indexed: Indexed) -> None:
        order = next(self._counter)
        row = _Row(entry, payload, now_ms(), order, indexed.row, indexed.plaintext, indexed.sealed)
        self._rows[entry.id] = row
        self._by_order[order] = entry.id
        self._by_seq[(entry.author, entry.seq)] = entry.id

    def _sealed(self) -> list[tuple[int, Entry, bytes]]:
        return [
            (r.order, r.entry, r.payload)
            for r in sorted(self._rows.values(), key=lambda r: r.order)
            if r.sealed and r.payload is not None
        ]

    def _unseal(self, rowid: int, indexed: Indexed) -> None:
        row = self._rows[self._by_order[rowid]]
        row.sealed, row.index, row.plaintext = False, indexed.row, indexed.plaintext

    def crew_keys(self) -> dict[bytes, dict[int, bytes]]:
        return {crew: dict(keys) for crew, keys in self._crew_keys.items()}

    def put_crew_keys(self, crew: bytes, keys: dict[int, bytes]) -> None:
        for epoch, key in keys.items():
            self._crew_keys.setdefault(crew, {}).setdefault(epoch, key)

    def crew_content(
        self, crew: bytes, content_type: str, limit: int | None = None
    ) -> list[StoredEntry]:
        rows = sorted(
            (
                r
                for r in self._rows.values()
                if r.index and r.index.type == content_type and r.index.crew == crew
            ),
            key=lambda r: -r.order,
        )
        return [r.stored() for r in rows[:limit]]

    def _set_tip(self, author: bytes, tip: Tip) -> None:
        old = self._feeds.get(author)
        self._feeds[author] = FeedInfo(author, tip.seq, tip.id, bool(old and old.forked))

    def _mark_forked(self, proof: ForkProof) -> None:
        self._forks.setdefault((proof.author, proof.seq), proof)
        old = self._feeds[proof.author]
        self._feeds[proof.author] = FeedInfo(old.author, old.latest_seq, old.latest_id, True)

    def _tombstone_author(self, target: bytes) -> bytes | None:
        return self._tombstones.get(target)

    def _add_tombstone(self, target: bytes, author: bytes) -> None:
        self._tombstones.setdefault(target, author)

    def _drop_payload(self, entry_id: bytes) -> None:
        row = self._rows.get(entry_id)
        if row is not None:
            row.payload, row.index, row.plaintext, row.sealed = None, None, None, False

    def feeds(self) -> list[FeedInfo]:
        return sorted(self._feeds.values(), key=lambda f: f.author)

    def latest_seqs(self) -> dict[bytes, int]:
        return {a: f.latest_seq for a, f in self._feeds.items()}

    def get_at(self, author: bytes, seq: int) -> StoredEntry | None:
        entry_id = self._by_seq.get((author, seq))
        return self._rows[entry_id].stored() if entry_id else None

    def range(self, author: bytes, start: int = 1, end: int | None = None) -> list[StoredEntry]:
        feed = self._feeds.get(author)
        if feed is None:
            return []
        last = min(end if end is not None else feed.latest_seq, feed.latest_seq)
        found = (self.get_at(author, s) for s in range(max(start, 1), last + 1))
        return [s for s in found if s is not None]

    def raw_range(
        self, author: bytes, start: int, end: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes | None]]:
        rows = ((s.entry.header, s.payload) for s in self.range(author, start, end))
        return take_within(rows, max_bytes)

    def iter_feed(self, author: bytes, start: int = 1, batch: int = 1000) -> Iterator[StoredEntry]:
        yield from self.range(author, start)

    def forks(self) -> list[ForkProof]:
        return [self._forks[k] for k in sorted(self._forks)]

    def thread(self, root: bytes) -> list[StoredEntry]:
        rows = [
            r
            for r in self._rows.values()
            if r.entry.id == root or (r.index and r.index.root == root)
        ]
        return [r.stored() for r in sorted(rows, key=lambda r: r.order)]

    def by_type(self, content_type: str, limit: int | None = None) -> list[StoredEntry]:
        rows = sorted(
            (
                r
                for r in self._rows.values()
                if r.index and r.index.type == content_type and r.index.crew is None
            ),
            key=lambda r: -r.order,
        )
        return [r.stored() for r in rows[:limit]]

    def referring(self, target: bytes, content_type: str | None = None) -> list[StoredEntry]:
        rows = [
            r
            for r in self._rows.values()
            if r.index and r.index.target == target and content_type in (None, r.index.type)
        ]
        return [r.stored() for r in sorted(rows, key=lambda r: r.order)]

    def count(self) -> int:
        return len(self._rows)

    def peer_clock(self, peer: bytes) -> tuple[dict[bytes, int], dict[bytes, int]]:
        received, sent = self._clocks.get(peer, ({}, {}))
        return dict(received), dict(sent)

    def save_peer_clock(
        self, peer: bytes, received: dict[bytes, int], sent: dict[bytes, int]
    ) -> None:
        self._clocks[peer] = (dict(received), dict(sent))

    def known_peers(self) -> list[PeerRecord]:
        return [self._peers[a] for a in sorted(self._peers)]

    def save_peer(self, record: PeerRecord) -> None:
        old = self._peers.get(record.address)
        if old is not None and record.last_connected is None:
            record = dataclasses.replace(record, last_connected=old.last_connected)
        if old is not None and old.source == "pub":  # a pub stays a pub (see SqliteStore)
            record = dataclasses.replace(record, source="pub")
        self._peers[record.address] = record

    def thread_stats(self, crew: bytes | None, me: bytes, limit: int = 200) -> list[ThreadStats]:
        roots = [
            r
            for r in self._rows.values()
            if r.index and r.index.type == "post" and r.index.root is None and r.index.crew == crew
        ]
        out = []
        for root in roots:
            seen = self._marks.get(root.entry.id, 0)
            replies = [
                r
                for r in self._rows.values()
                if r.index and r.index.type == "post" and r.index.root == root.entry.id
            ]
            last = max([root.order, *(r.order for r in replies)])
            unread = sum(1 for r in [root, *replies] if r.order > seen and r.entry.author != me)
            out.append(ThreadStats(root.stored(), len(replies), last, unread))
        out.sort(key=lambda t: -t.last_order)
        return out[:limit]

    def contact_actions(self) -> dict[bytes, dict[bytes, str]]:
        latest: dict[tuple[bytes, bytes], tuple[int, str]] = {}
        for r in self._rows.values():
            i = r.index
            if i is not None and i.action is not None and i.target is not None:
                pair = (r.entry.author, i.target)
                if pair not in latest or latest[pair][0] < r.entry.seq:
                    latest[pair] = (r.entry.seq, i.action)
        graph: dict[bytes, dict[bytes, str]] = {}
        for (author, target), (_, action) in latest.items():
            graph.setdefault(author, {})[target] = action
        return graph

    def profile_names(self) -> dict[bytes, str]:
        latest: dict[bytes, tuple[int, str]] = {}
        for r in self._rows.values():
            if r.index and r.index.name is not None and r.index.crew is None:
                author, seq = r.entry.author, r.entry.seq
                if author not in latest or latest[author][0] < seq:
                    latest[author] = (seq, r.index.name)
        return {author: name for author, (_, name) in latest.items()}

    def mark_read(self, target: bytes, order: int) -> None:
        self._marks[target] = max(order, self._marks.get(target, 0))

    def read_mark(self, target: bytes) -> int:
        return self._marks.get(target, 0)

    def get_meta(self, key: str) -> bytes | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._meta.pop(key, None)
        else:
            self._meta[key] = value

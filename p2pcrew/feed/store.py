"""The store: the one owner of persistence, and the one path to "accepted".

``Store`` holds every decision (validation order, forks, deletes, own appends) and
asks a backend for a handful of primitive reads and writes inside a transaction.
Two backends implement those primitives: SQLite (``sqlite_store``) for real use and
a dictionary (``memory_store``) for fast tests; one contract suite runs against
both, so they cannot drift apart.

Ingest order for a batch of received entries: decode and verify signatures first,
in parallel and outside any transaction (pure work); then, in one write
transaction, apply the chain rules entry by entry, store what passes and index it.
A rejection never aborts the batch: the valid entries are kept and the rejection
is reported with its rule, so a peer that sends garbage mid-stream loses only the
garbage.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import nacl.signing

from p2pcrew.errors import P2PCrewError
from p2pcrew.feed import validate
from p2pcrew.feed.entry import Entry, create_entry, lipmaa
from p2pcrew.feed.errors import (
    BacklinkMismatch,
    EntryRejected,
    FeedForked,
    ForkDetected,
    SequenceRepeat,
)
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.indexing import CREW_STATE, NOT_YET, Indexed, Opener, RowHint, index_payload
from p2pcrew.feed.validate import Tip
from p2pcrew.feed.verify import Started, Verifier
from p2pcrew.feed.verify_processes import Prepared


class StoreError(P2PCrewError):
    """The store cannot be used as asked (locked, missing, newer schema, ...)."""


@dataclass(frozen=True, slots=True)
class FeedInfo:
    author: bytes
    latest_seq: int
    latest_id: bytes
    forked: bool

    @property
    def tip(self) -> Tip:
        return Tip(self.latest_seq, self.latest_id)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: Entry
    payload: bytes | None
    """None when the payload was deleted."""
    received_at: int
    """Local wall-clock milliseconds when this store accepted the entry."""
    order: int
    """Local arrival order; larger is newer."""
    plaintext: bytes | None = None
    """For a crew envelope we could open: its decrypted content."""

    @property
    def content_bytes(self) -> bytes | None:
        """What to decode as content: the opened plaintext, else the payload itself."""
        return self.plaintext if self.plaintext is not None else self.payload


@dataclass(frozen=True, slots=True)
class ForkProof:
    """Two validly signed headers by one author that cannot both be in one feed.

    ``first`` is the stored header at ``seq``; ``second`` is either another header at
    ``seq`` or a header at ``seq + 1`` whose backlink names another entry ``seq``.
    """

    author: bytes
    seq: int
    first: bytes
    second: bytes


@dataclass(frozen=True, slots=True)
class ThreadStats:
    """One thread root with what a thread list shows, computed by the database."""

    root: StoredEntry
    replies: int
    last_order: int
    unread: int


@dataclass(frozen=True, slots=True)
class PeerRecord:
    address: str
    feed: bytes
    source: str
    """How we learnt it: manual, lan, pub, invite."""
    last_connected: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    """Position in the submitted batch."""
    error: EntryRejected


@dataclass(slots=True)
class IngestResult:
    accepted: list[Entry] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    newly_forked: list[bytes] = field(default_factory=list)


def take_within(
    rows: Iterable[tuple[bytes, bytes | None]], max_bytes: int | None
) -> list[tuple[bytes, bytes | None]]:
    """``rows`` until their headers and payloads would pass ``max_bytes`` (at least one).

    Stops iterating there, so a lazy source (an SQLite cursor) reads nothing beyond:
    that is the point of ``Store.raw_range``'s ``max_bytes``.
    """
    taken: list[tuple[bytes, bytes | None]] = []
    size = 0
    for header, payload in rows:
        size += len(header) + (len(payload) if payload else 0)
        if taken and max_bytes is not None and size > max_bytes:
            break
        taken.append((header, payload))
    return taken


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_NOTHING = Indexed(None, None, False)


class Store(ABC):
    """Decisions live here; backends supply primitives (the ``_`` methods)."""

    def __init__(self, verifier: Verifier | None = None) -> None:
        self.verifier = verifier or Verifier()
        self.opener: Opener | None = None
        self._keys_changed = False
        """The crew keyring, once the crew layer attaches one (see ``attach_opener``)."""

    def attach_opener(self, opener: Opener) -> int:
        """Use ``opener`` for crew envelopes from now on, and open the backlog it can."""
        self.opener = opener
        with self._transaction(durable=False):
            return self._retry_sealed()

    # ---- writes --------------------------------------------------------------

    def append(
        self, signing_key: nacl.signing.SigningKey, payloads: Sequence[bytes]
    ) -> list[Entry]:
        """Sign and durably store new own entries, one transaction for all.

        The commit is durable (fsync) before this returns, so nothing can offer an
        entry to a peer that a crash could still take back.

        Raises:
            FeedForked: our own feed is marked forked (the key was used elsewhere).
            EntryTooLarge: a payload exceeds the maximum size.
        """
        author = bytes(signing_key.verify_key)
        created: list[Entry] = []
        with self._transaction(durable=True):
            feed = self._feed(author)
            if feed is not None and feed.forked:
                raise FeedForked(
                    "your own feed is marked forked: this key published elsewhere; "
                    "see `p2pcrew feeds`",
                    where=feed_id_to_text(author),
                )
            tip = feed.tip if feed is not None else None
            for payload in payloads:
                seq = 1 if tip is None else tip.seq + 1
                lip = self._entry_id_at(author, lipmaa(seq)) if seq > 1 else None
                backlink = tip.id if tip is not None else None
                entry = create_entry(signing_key, seq, backlink, lip, payload)
                self._store(entry, payload)
                tip = Tip(seq, entry.id)
                created.append(entry)
            if tip is not None:
                self._set_tip(author, tip)
        return created

    def ingest(
        self, items: Sequence[tuple[bytes, bytes | None]], *, expected_author: bytes | None = None
    ) -> IngestResult:
        """Validate and store received (header, payload) pairs in one transaction.

        A payload of None stores the header alone (its payload was deleted).
        Rejections are reported per item in the result, never raised.
        """
        return self._ingest_started(items, self.verifier.start_prepare(items), expected_author)

    def ingest_batches(
        self,
        batches: Iterable[Sequence[tuple[bytes, bytes | None]]],
        *,
        expected_author: bytes | None = None,
    ) -> Iterator[IngestResult]:
        """``ingest`` each batch in turn, one result per batch, as they are committed.

        The next batch is handed to the verify pool before the current one is stored,
        so the pool keeps working while the writer applies the chain rules and
        commits (with ``ingest`` alone it sat idle then). At most two batches are in
        memory; what the caller does not read is cancelled.
        """
        todo = iter(batches)
        items = next(todo, None)
        started = self.verifier.start_prepare(items) if items is not None else None
        ahead: Started[Prepared] | None = None
        try:
            while items is not None and started is not None:
                following = next(todo, None)
                ahead = self.verifier.start_prepare(following) if following is not None else None
                yield self._ingest_started(items, started, expected_author)
                items, started, ahead = following, ahead, None
        finally:
            for pending in (started, ahead):
                if pending is not None:
                    pending.cancel()

    def _ingest_started(
        self,
        items: Sequence[tuple[bytes, bytes | None]],
        started: Started[Prepared],
        expected_author: bytes | None,
    ) -> IngestResult:
        result = IngestResult()
        tips: dict[bytes, Tip] = {}
        prepared = (each for chunk in started.chunks() for each in chunk)
        with self._transaction(durable=False):
            for index, (item, (entry, hint)) in enumerate(zip(items, prepared, strict=True)):
                if isinstance(entry, EntryRejected):
                    result.rejected.append(Rejection(index, entry))
                    continue
                try:
                    if entry.author in result.newly_forked:
                        raise FeedForked("feed forked earlier in this batch", where=entry.where())
                    self._accept(entry, item[1], expected_author, tips, hint)
                except SequenceRepeat:
                    result.duplicates += 1
                except EntryRejected as exc:
                    if isinstance(exc, ForkDetected):
                        result.newly_forked.append(entry.author)
                    result.rejected.append(Rejection(index, exc))
                else:
                    result.accepted.append(entry)
            for author, tip in tips.items():
                self._set_tip(author, tip)
        return result

    def delete_local(self, entry_id: bytes) -> bool:
        """Drop a payload here and never accept it again. True if we held it."""
        with self._transaction(durable=True):
            stored = self._get(entry_id)
            if stored is None:
                return False
            self._add_tombstone(entry_id, stored.entry.author)
            self._drop_payload(entry_id)
            return True

    # ---- the decisions -----------------------------------------------------

    def _accept(
        self,
        entry: Entry,
        payload: bytes | None,
        expected_author: bytes | None,
        tips: dict[bytes, Tip],
        hint: RowHint = NOT_YET,
    ) -> None:
        if expected_author is not None:
            validate.check_author(entry, expected_author)
        tip = tips.get(entry.author)
        if tip is None:
            feed = self._feed(entry.author)
            if feed is not None and feed.forked:
                raise FeedForked(
                    "feed is marked forked; nothing more is accepted", where=entry.where()
                )
            tip = feed.tip if feed is not None else None
        if tip is not None and entry.seq <= tip.seq:
            self._check_repeat_or_fork(entry, tip)
        lip_seq = validate.expected_lipmaa_seq(entry)
        target = (
            tip.id
            if tip is not None and lip_seq == tip.seq  # most links point at the previous entry
            else self._entry_id_at(entry.author, lip_seq)
        )
        try:
            validate.check_successor(entry, tip, target)
        except BacklinkMismatch:
            # A validly signed successor that links to another entry at tip.seq proves
            # the author signed two histories: that is a fork, not a bad peer.
            self._fork_by_successor(entry, tip)
            raise
        if payload is not None:
            validate.check_payload(entry, payload)
            if self._tombstone_author(entry.id) == entry.author:
                payload = None  # deleted by its author before it reached us
        self._store(entry, payload, hint)
        tips[entry.author] = Tip(entry.seq, entry.id)

    def _fork_by_successor(self, entry: Entry, tip: Tip | None) -> None:
        stored = self._entry_at(entry.author, tip.seq) if tip is not None else None
        if stored is None:
            return
        self._set_tip(entry.author, tip)  # type: ignore[arg-type] # stored implies a tip
        self._mark_forked(ForkProof(entry.author, stored.seq, stored.header, entry.header))
        raise ForkDetected(
            f"the author signed another entry {stored.seq} than the one stored here; the "
            "feed is marked forked and nothing more from it will be accepted",
            where=entry.where(),
        )

    def _check_repeat_or_fork(self, entry: Entry, tip: Tip) -> None:
        stored = self._entry_at(entry.author, entry.seq)
        if stored is None:  # pragma: no cover - a tip implies the whole prefix
            raise StoreError(f"store is missing {entry.where()}; run `p2pcrew check`")
        try:
            validate.check_same_entry(entry, stored)
        except ForkDetected:
            self._set_tip(entry.author, tip)  # the tip may be pending in this batch
            self._mark_forked(ForkProof(entry.author, entry.seq, stored.header, entry.header))
            raise

    def _store(self, entry: Entry, payload: bytes | None, hint: RowHint = NOT_YET) -> None:
        """Insert and index; ``hint`` is the verifier's index row for a checked payload."""
        indexed = index_payload(payload, self.opener, hint) if payload is not None else _NOTHING
        self._insert(entry, payload, indexed)
        self._after_index(entry, indexed)
        if self._keys_changed:
            self._retry_sealed()

    def _after_index(self, entry: Entry, indexed: Indexed) -> None:
        row = indexed.row
        if row is None:
            return
        if row.type == "delete" and row.target is not None:
            self._apply_delete(entry.author, row.target)
        elif (
            row.type == CREW_STATE
            and self.opener is not None
            and indexed.plaintext
            and self.opener.learn(entry.author, entry.id, entry.seq, indexed.plaintext)
        ):
            self._keys_changed = True

    def _retry_sealed(self) -> int:
        """Open what new keys can open; repeat while that reveals more keys."""
        opened = 0
        while self.opener is not None:
            self._keys_changed = False
            for rowid, entry, payload in self._sealed():
                indexed = index_payload(payload, self.opener)
                if indexed.sealed:
                    continue
                self._unseal(rowid, indexed)
                opened += 1
                self._after_index(entry, indexed)
            if not self._keys_changed:
                break
        return opened

    def _apply_delete(self, deleter: bytes, target: bytes) -> None:
        """Only an entry's author may delete it; a delete may arrive before its target."""
        stored = self._get(target)
        if stored is not None and stored.entry.author != deleter:
            return
        self._add_tombstone(target, deleter)
        if stored is not None:
            self._drop_payload(target)

    # ---- reads (public) ---------------------------------------------------

    def feed(self, author: bytes) -> FeedInfo | None:
        return self._feed(author)

    def get(self, entry_id: bytes) -> StoredEntry | None:
        return self._get(entry_id)

    def is_deleted(self, entry_id: bytes) -> bool:
        return self._tombstone_author(entry_id) is not None

    @abstractmethod
    def feeds(self) -> list[FeedInfo]: ...

    @abstractmethod
    def latest_seqs(self) -> dict[bytes, int]:
        """The vector clock: feed id to latest stored sequence number."""

    @abstractmethod
    def get_at(self, author: bytes, seq: int) -> StoredEntry | None: ...

    @abstractmethod
    def range(self, author: bytes, start: int = 1, end: int | None = None) -> list[StoredEntry]:
        """Entries ``start..end`` (inclusive) of a feed, in order."""

    @abstractmethod
    def raw_range(
        self, author: bytes, start: int, end: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes | None]]:
        """(header, payload) bytes of entries ``start..end``: what replication sends.

        With ``max_bytes``, stops before the entry that would take the headers and
        payloads past it (but returns at least one), and reads no row beyond it: a
        sender of 16 KiB entries must not load 256 of them to send three, once per
        slow reader.
        """

    @abstractmethod
    def iter_feed(self, author: bytes, start: int = 1, batch: int = 1000) -> Iterator[StoredEntry]:
        """All entries of a feed from ``start``, in order, read in batches."""

    @abstractmethod
    def forks(self) -> list[ForkProof]: ...

    @abstractmethod
    def thread(self, root: bytes) -> list[StoredEntry]:
        """The root post and every entry whose thread root is ``root``, arrival order."""

    @abstractmethod
    def by_type(self, content_type: str, limit: int | None = None) -> list[StoredEntry]:
        """Entries of one content type, newest arrival first."""

    @abstractmethod
    def referring(self, target: bytes, content_type: str | None = None) -> list[StoredEntry]:
        """Entries whose index target is ``target`` (updates, reactions), arrival order."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def get_meta(self, key: str) -> bytes | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: bytes | None) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # ---- crews -------------------------------------------------------------

    @abstractmethod
    def crew_keys(self) -> dict[bytes, dict[int, bytes]]:
        """Every crew epoch key we hold: crew id -> epoch -> key."""

    @abstractmethod
    def put_crew_keys(self, crew: bytes, keys: dict[int, bytes]) -> None:
        """Add keys (inside the caller's transaction when called from the opener)."""

    @abstractmethod
    def crew_content(
        self, crew: bytes, content_type: str, limit: int | None = None
    ) -> list[StoredEntry]:
        """Opened entries of one crew and type, newest arrival first."""

    # ---- reading state -------------------------------------------------------

    @abstractmethod
    def thread_stats(self, crew: bytes | None, me: bytes, limit: int = 200) -> list[ThreadStats]:
        """Thread roots of a crew (None: public), newest activity first, with reply
        counts and how many entries arrived since the person last looked (own
        posts excluded). One query, whatever the number of entries."""

    @abstractmethod
    def contact_actions(self) -> dict[bytes, dict[bytes, str]]:
        """author -> {target: the author's latest contact action on it}."""

    @abstractmethod
    def profile_names(self) -> dict[bytes, str]:
        """The latest display name of every author that set one."""

    @abstractmethod
    def mark_read(self, target: bytes, order: int) -> None: ...

    @abstractmethod
    def read_mark(self, target: bytes) -> int: ...

    # ---- what replication remembers about peers ------------------------------

    @abstractmethod
    def peer_clock(self, peer: bytes) -> tuple[dict[bytes, int], dict[bytes, int]]:
        """(notes received from, notes sent to) ``peer``; empty dicts if unknown."""

    @abstractmethod
    def save_peer_clock(
        self, peer: bytes, received: dict[bytes, int], sent: dict[bytes, int]
    ) -> None: ...

    @abstractmethod
    def known_peers(self) -> list[PeerRecord]: ...

    @abstractmethod
    def save_peer(self, record: PeerRecord) -> None: ...

    # ---- primitives (backends) --------------------------------------------

    @abstractmethod
    def _transaction(self, *, durable: bool) -> AbstractContextManager[None]: ...

    @abstractmethod
    def _feed(self, author: bytes) -> FeedInfo | None: ...

    @abstractmethod
    def _get(self, entry_id: bytes) -> StoredEntry | None: ...

    @abstractmethod
    def _entry_at(self, author: bytes, seq: int) -> Entry | None: ...

    @abstractmethod
    def _entry_id_at(self, author: bytes, seq: int) -> bytes | None: ...

    @abstractmethod
    def _insert(self, entry: Entry, payload: bytes | None, indexed: Indexed) -> None: ...

    @abstractmethod
    def _sealed(self) -> list[tuple[int, Entry, bytes]]:
        """(rowid, entry, payload) of envelopes no key opened yet."""

    @abstractmethod
    def _unseal(self, rowid: int, indexed: Indexed) -> None: ...

    @abstractmethod
    def _set_tip(self, author: bytes, tip: Tip) -> None: ...

    @abstractmethod
    def _mark_forked(self, proof: ForkProof) -> None: ...

    @abstractmethod
    def _tombstone_author(self, target: bytes) -> bytes | None: ...

    @abstractmethod
    def _add_tombstone(self, target: bytes, author: bytes) -> None: ...

    @abstractmethod
    def _drop_payload(self, entry_id: bytes) -> None: ...

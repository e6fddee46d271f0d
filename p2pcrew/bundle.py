"""Offline bundles: a set of feeds in one file, carried on a USB stick.

Why a format of its own rather than a copy of the database: the importer must treat
the file like a peer it does not trust. Every entry goes through ``Store.ingest``
(the only path to "accepted"), and a file cut short by a yanked stick or changed by
hand imports what is valid and says where and why it stopped.
``docs/protocol.md`` section 8 is the normative description; in short::

    "P2PCREWB" 0x01, then records: uint32be(length) || one canonical CBOR value
    header {"version", "created", "feeds", "entries"}, then [header, payload|null]
    per entry, then ["end", entry count, BLAKE2b-256 of every byte before it]

Reading streams record by record and checks each length before reading the body,
so a hostile file costs at most one 64 KiB record plus one ingest batch of memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from p2pcrew import codec
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.entry import header_author
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.store import IngestResult, Store, now_ms

MAGIC = b"P2PCREWB"
BUNDLE_VERSION = 1
PREFIX = MAGIC + bytes([BUNDLE_VERSION])
MAX_RECORD = 64 * 1024
"""Largest record body; an entry record is at most about 16.7 KB."""
IMPORT_BATCH = 500
"""Entries per ``Store.ingest`` call: one transaction, and parallel verification."""
MAX_LISTED_REJECTIONS = 50
"""Rejections described one by one; the per-rule counts are always complete."""
_HEADER_KEYS = frozenset({"version", "created", "feeds", "entries"})
_AGAIN = ": it was cut short (an interrupted copy?); copy or export it again"


class BundleError(P2PCrewError):
    """The file is not a complete, intact bundle. ``offset`` is where reading stopped:
    everything before it was read (and its valid entries imported)."""

    kind: ClassVar[str] = "unreadable"

    def __init__(self, message: str, *, offset: int) -> None:
        self.offset = offset
        super().__init__(f"at byte {offset}: {message}")


class NotABundle(BundleError):
    """Empty, or some other kind of file: nothing was imported."""

    kind = "not-a-bundle"


class UnsupportedBundleVersion(BundleError):
    """Written by a newer p2pcrew: nothing was imported."""

    kind = "unsupported-version"


class BundleTruncated(BundleError):
    """The file ends early: the entries before the cut were imported."""

    kind = "truncated"


class BundleCorrupt(BundleError):
    """Bytes were changed or the framing is broken: the valid prefix was imported."""

    kind = "corrupt"


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """The header record. ``feeds`` is informational; ``entries`` is checked at the end."""

    version: int
    created: int
    feeds: int
    entries: int


class BundleReader:
    """Streams one bundle's entries; raises a ``BundleError`` at the first problem.

    Entries are yielded before the end record is seen: they are signed, so the store
    judges each on its own; the end record proves the file complete and unchanged.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hash = hashlib.blake2b(digest_size=32)
        self.offset = 0
        self.info: BundleInfo | None = None

    def entries(self) -> Iterator[tuple[bytes, bytes | None]]:
        self._read_prefix()
        self.info = info = self._read_info()
        count = 0
        while True:
            start = self.offset
            value, raw = self._read_record(count + 1, f"after {count} entries, before the end")
            if type(value) is list and value and value[0] == "end":
                self._check_end(value, count, info.entries, start)
                return
            if not _is_entry(value):
                raise BundleCorrupt(f"record {count + 1} is not an entry record", offset=start)
            self._hash.update(raw)
            count += 1
            yield value[0], value[1]

    def _read_prefix(self) -> None:
        head = self._read(len(PREFIX))
        if not head:
            raise NotABundle(
                "the file is empty (was the export or the copy interrupted?)", offset=0
            )
        if head[: len(MAGIC)] != MAGIC[: len(head)]:
            raise NotABundle(
                "not a p2pcrew bundle (it does not start with P2PCREWB); "
                "use a file written by `p2pcrew bundle export`",
                offset=0,
            )
        if len(head) < len(PREFIX):
            raise BundleTruncated("the file ends inside the bundle signature" + _AGAIN, offset=0)
        if head[-1] != BUNDLE_VERSION:
            raise UnsupportedBundleVersion(
                f"bundle format version {head[-1]} is newer than this p2pcrew reads "
                f"({BUNDLE_VERSION}); upgrade p2pcrew",
                offset=len(MAGIC),
            )
        self._hash.update(head)

    def _read_info(self) -> BundleInfo:
        start = self.offset
        value, raw = self._read_record(0, "before the header")
        if (
            type(value) is not dict
            or set(value) != _HEADER_KEYS
            or any(type(v) is not int or v < 0 for v in value.values())
            or value["version"] != BUNDLE_VERSION
        ):
            raise BundleCorrupt("the first record is not a bundle header", offset=start)
        self._hash.update(raw)
        return BundleInfo(**value)

    def _read_record(self, number: int, where: str) -> tuple[Any, bytes]:
        """(value, raw bytes) of the next record; its length is checked before its body."""
        start = self.offset
        head = self._read(4)
        if len(head) < 4:
            inside = f"inside the length of record {number}" if head else where
            raise BundleTruncated(f"the file ends {inside}" + _AGAIN, offset=start)
        size = int.from_bytes(head, "big")
        if not 1 <= size <= MAX_RECORD:
            raise BundleCorrupt(
                f"record {number} claims {size} bytes (at most {MAX_RECORD}): the file is damaged",
                offset=start,
            )
        body = self._read(size)
        if len(body) < size:
            raise BundleTruncated(
                f"the file ends inside record {number} ({len(body)} of {size} bytes)" + _AGAIN,
                offset=start,
            )
        try:
            return codec.decode(body), head + body
        except codec.CodecError as exc:
            raise BundleCorrupt(
                f"record {number} is not canonical CBOR: {exc}", offset=start
            ) from exc

    def _check_end(self, value: list[Any], count: int, expected: int, start: int) -> None:
        if len(value) != 3 or type(value[1]) is not int or type(value[2]) is not bytes:
            raise BundleCorrupt("the end record is malformed", offset=start)
        if value[2] != self._hash.digest():
            raise BundleCorrupt(
                "the end record's checksum does not match: the file was changed after export",
                offset=start,
            )
        if not value[1] == expected == count:
            raise BundleCorrupt(
                f"the file holds {count} entries, its header says {expected}, its end {value[1]}",
                offset=start,
            )
        if self._read(1):
            raise BundleCorrupt("there are bytes after the end record", offset=self.offset - 1)

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at end of file."""
        data = b""
        try:
            while len(data) < size and (chunk := self._stream.read(size - len(data))):
                data += chunk
        except OSError as exc:
            raise BundleError(
                f"cannot read the file: {exc.strerror or exc}", offset=self.offset
            ) from exc
        self.offset += len(data)
        return data


def _is_entry(value: Any) -> bool:
    return (
        type(value) is list
        and len(value) == 2
        and type(value[0]) is bytes
        and (value[1] is None or type(value[1]) is bytes)
    )


# ---- import ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RejectedEntry:
    index: int
    """Position of the entry in the file, from 0."""
    feed: str | None
    rule: str
    message: str


@dataclass(slots=True)
class ImportReport:
    """What an import did. ``ok``: the file was intact and nothing was rejected."""

    entries_read: int = 0
    new: int = 0
    already_had: int = 0
    skipped: int = 0
    """Entries of feeds the caller asked to skip (blocked feeds)."""
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    rejections: list[RejectedEntry] = field(default_factory=list)
    info: BundleInfo | None = None
    error: BundleError | None = None
    """Why reading stopped early, or None when the whole file was intact."""

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_rule.values())

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected_by_rule


def import_bundle(
    store: Store, path: Path, *, skip: Collection[bytes] = frozenset(), batch: int = IMPORT_BATCH
) -> ImportReport:
    """Validate and store every entry of the bundle at ``path``; see ``import_stream``.

    Raises:
        P2PCrewError: the file cannot be opened. Problems inside it are in the report.
    """
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below; open errors get a message
    except OSError as exc:
        raise P2PCrewError(f"cannot open {path}: {exc.strerror or exc}") from exc
    with stream:
        return import_stream(store, stream, skip=skip, batch=batch)


_Pending = list[tuple[int, bytes, bytes | None]]
"""A batch as read from the file: (index in the file, header, payload)."""


def import_stream(
    store: Store,
    stream: IO[bytes],
    *,
    skip: Collection[bytes] = frozenset(),
    batch: int = IMPORT_BATCH,
) -> ImportReport:
    """Ingest a bundle in batches; a damaged file imports its valid prefix.

    Never raises for the file's content: ``report.error`` says where and why reading
    stopped, and rejected entries are counted by rule. Store errors propagate.
    """
    report = ImportReport()
    reader = BundleReader(stream)
    read: deque[_Pending] = deque()  # batches handed to the store, not yet reported

    def batches() -> Iterator[list[tuple[bytes, bytes | None]]]:
        pending: _Pending = []
        try:
            for header, payload in reader.entries():
                report.entries_read += 1
                if header_author(header) in skip:
                    report.skipped += 1
                    continue
                pending.append((report.entries_read - 1, header, payload))
                if len(pending) >= batch:
                    read.append(pending)
                    yield [(h, p) for _, h, p in pending]
                    pending = []
        except BundleError as exc:
            report.error = exc
        if pending:
            read.append(pending)
            yield [(h, p) for _, h, p in pending]

    # ingest_batches verifies the next batch while this one is stored (a big bundle
    # from a USB stick at a meetup is exactly the bulk case it is for).
    for result in store.ingest_batches(batches()):
        _report(read.popleft(), result, report)
    report.info = reader.info
    return report


def _report(pending: _Pending, result: IngestResult, report: ImportReport) -> None:
    report.new += len(result.accepted)
    report.already_had += result.duplicates
    for rejection in result.rejected:
        rule = rejection.error.rule
        report.rejected_by_rule[rule] = report.rejected_by_rule.get(rule, 0) + 1
        if len(report.rejections) < MAX_LISTED_REJECTIONS:
            index, header, _ = pending[rejection.index]
            author = header_author(header)
            feed = feed_id_to_text(author) if author is not None else None
            report.rejections.append(RejectedEntry(index, feed, rule, str(rejection.error)))


# ---- export ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportReport:
    path: Path
    feeds: int
    entries: int
    size: int


def export_bundle(
    store: Store,
    path: Path,
    feeds: Sequence[bytes],
    *,
    created: int | None = None,
    replace_any: bool = False,
) -> ExportReport:
    """Write every stored entry of ``feeds`` to ``path``: atomically, mode 0600.

    Each feed is read up to its tip at the start, so a node appending meanwhile
    cannot make the counts in the header wrong.

    Raises:
        P2PCrewError: a feed is not in the store, ``path`` exists and is not a bundle
            (unless ``replace_any``), or the file cannot be written.
    """
    tips: dict[bytes, int] = {}
    for author in feeds:
        feed = store.feed(author)
        if feed is None:
            raise P2PCrewError(f"no feed {feed_id_to_text(author)} in this store")
        tips[author] = feed.latest_seq
    created = now_ms() if created is None else created
    info = BundleInfo(BUNDLE_VERSION, created, len(tips), sum(tips.values()))
    try:
        if not replace_any:
            _refuse_to_replace(path)
        size = _write_atomically(store, path, info, tips)
    except OSError as exc:
        raise P2PCrewError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return ExportReport(path, info.feeds, info.entries, size)


def _refuse_to_replace(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as existing:
        head = existing.read(len(MAGIC))
        if head and head != MAGIC:
            raise P2PCrewError(
                f"{path} exists and is not a bundle; refusing to replace it "
                "(pick another name, or use --force)"
            )


def _write_atomically(store: Store, path: Path, info: BundleInfo, tips: dict[bytes, int]) -> int:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)  # mkstemp's default, stated: a bundle holds crew content
        with os.fdopen(fd, "wb") as out:
            writer = _Writer(out)
            writer.record(dataclasses.asdict(info))
            for author, latest in tips.items():
                for start in range(1, latest + 1, IMPORT_BATCH):
                    end = min(start + IMPORT_BATCH - 1, latest)
                    rows = store.raw_range(author, start, end)
                    if len(rows) != end - start + 1:
                        raise P2PCrewError(
                            f"the store lacks entries {start}..{end} of "
                            f"{feed_id_to_text(author)}; run `p2pcrew check`"
                        )
                    for header, payload in rows:
                        writer.record([header, payload])
            writer.record(["end", info.entries, writer.hash.digest()])
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # some file systems (FAT sticks) cannot sync dirs
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return writer.size


class _Writer:
    """Frames records and keeps the running hash the end record carries."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.hash = hashlib.blake2b(digest_size=32)
        self.size = 0
        self._write(PREFIX)

    def record(self, value: object) -> None:
        body = codec.encode(value)
        if len(body) > MAX_RECORD:  # pragma: no cover - entries are at most ~16.7 KB
            raise P2PCrewError(f"a record of {len(body)} bytes exceeds {MAX_RECORD}")
        self._write(len(body).to_bytes(4, "big") + body)

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self.hash.update(data)
        self.size += len(data)

"""A store whose WAL ends in a torn or damaged frame opens whole, one commit back.

A power cut can leave the write-ahead log's last frame half written, or written with
garbage. SQLite must then drop the transaction that frame ends (its commit frame no
longer verifies) and keep every earlier one. The store is built with all of its
commits still in the WAL (nothing checkpointed), copied as a crash would leave it
(database file and WAL, no shared-memory index, so the copy is recovered from the
WAL alone), and the copy's last frame is cut short or altered. Each copy must open,
pass SQLite's integrity check and ``check_store``, and hold exactly the feeds as of
the commit before the damaged one: a consistent prefix of every feed.

WAL layout (sqlite.org/fileformat2.html#walformat): a 32-byte header (page size at
offset 8), then frames of a 24-byte header and one page; a frame whose header has a
non-zero "database size" (offset 4) is the commit frame of its transaction.
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pcrew.feed.check import check_store
from p2pcrew.feed.sqlite_store import DB_NAME, SqliteStore
from tests.feed.helpers import key, make_chain

WAL_NAME = DB_NAME + "-wal"
WAL_HEADER = 32
FRAME_HEADER = 24
FEEDS = 3
PER_FEED = 120
BATCH = 15
"""Entries per ingest batch; 3 x 120 / 15 = 24 committed batches in the WAL."""
PAYLOAD = 300


@dataclass(frozen=True)
class Built:
    image: Path
    """A crash image: the database file and its WAL, nothing else."""
    commits: list[dict[bytes, int]]
    """Feed tips after each ingest commit, in order."""
    page_size: int
    frames: int
    last_frame: int
    """Offset of the last frame in the WAL."""


def _entries() -> Iterator[list[tuple[bytes, bytes | None]]]:
    """Batches that interleave the feeds, so every commit moves some tip."""
    chains = [make_chain(key(40 + n), PER_FEED, prefix=b"x" * PAYLOAD) for n in range(FEEDS)]
    for start in range(0, PER_FEED, BATCH // FEEDS):
        batch: list[tuple[bytes, bytes | None]] = []
        for chain in chains:
            batch += [(e.header, p) for e, p in chain[start : start + BATCH // FEEDS]]
        yield batch


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    source = tmp_path_factory.mktemp("source")
    image = tmp_path_factory.mktemp("image")
    store = SqliteStore(source)
    commits: list[dict[bytes, int]] = []
    try:
        for batch in _entries():
            result = store.ingest(batch)
            assert len(result.accepted) == len(batch)
            commits.append(store.latest_seqs())
        # Copy while the store is open: closing would checkpoint the WAL away.
        shutil.copyfile(source / DB_NAME, image / DB_NAME)
        shutil.copyfile(source / WAL_NAME, image / WAL_NAME)
    finally:
        store.close()
    wal = (image / WAL_NAME).read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frame = FRAME_HEADER + page_size
    frames, rest = divmod(len(wal) - WAL_HEADER, frame)
    assert rest == 0, "the WAL does not end on a frame boundary"
    last = WAL_HEADER + (frames - 1) * frame
    commit_frames = sum(
        struct.unpack(">I", wal[WAL_HEADER + i * frame + 4 : WAL_HEADER + i * frame + 8])[0] != 0
        for i in range(frames)
    )
    # Every batch must still be in the WAL (no checkpoint ran), ending on its commit.
    assert commit_frames >= len(commits), (commit_frames, len(commits))
    assert struct.unpack(">I", wal[last + 4 : last + 8])[0] != 0
    return Built(image, commits, page_size, frames, last)


def crash_copy(built: Built, tmp_path: Path) -> Path:
    shutil.copytree(built.image, tmp_path / "store")
    return tmp_path / "store"


def assert_opens_as(directory: Path, expected: dict[bytes, int]) -> None:
    """Opens (writable, as a node would), verifies, and holds exactly ``expected``."""
    with closing(SqliteStore(directory)) as store:
        assert store.integrity_check() == ["ok"]
        assert list(check_store(store)) == []  # chains verify, tips match entries
        assert store.latest_seqs() == expected
        for author, tip in expected.items():
            assert [s.entry.seq for s in store.iter_feed(author)] == list(range(1, tip + 1))
        assert store.count() == sum(expected.values())


def test_undamaged_copy_holds_every_commit(built: Built, tmp_path: Path) -> None:
    """The control: the last commit lives in the WAL and the copy recovers it."""
    assert_opens_as(crash_copy(built, tmp_path), built.commits[-1])


TORN_AT = [
    pytest.param(lambda page: 1, id="1-byte-of-header"),
    pytest.param(lambda page: FRAME_HEADER - 1, id="header-minus-1"),
    pytest.param(lambda page: FRAME_HEADER, id="header-only"),
    pytest.param(lambda page: FRAME_HEADER + 1, id="1-byte-of-page"),
    pytest.param(lambda page: FRAME_HEADER + page // 2, id="half-page"),
    pytest.param(lambda page: FRAME_HEADER + page - 1, id="all-but-last-byte"),
]
"""Bytes of the last frame left, as a function of the page size."""


@pytest.mark.parametrize("keep", TORN_AT)
def test_wal_torn_inside_last_frame_drops_only_the_last_commit(
    built: Built, tmp_path: Path, keep: Callable[[int], int]
) -> None:
    copy = crash_copy(built, tmp_path)
    with (copy / WAL_NAME).open("r+b") as wal:
        wal.truncate(built.last_frame + keep(built.page_size))
    assert_opens_as(copy, built.commits[-2])


FLIPPED_AT = [
    pytest.param(lambda page: 0, id="page-number"),
    pytest.param(lambda page: 7, id="commit-size"),
    pytest.param(lambda page: 8, id="salt-1"),
    pytest.param(lambda page: 15, id="salt-2"),
    pytest.param(lambda page: 16, id="checksum-1"),
    pytest.param(lambda page: 23, id="checksum-2"),
    pytest.param(lambda page: FRAME_HEADER, id="first-page-byte"),
    pytest.param(lambda page: FRAME_HEADER + page // 2, id="mid-page"),
    pytest.param(lambda page: FRAME_HEADER + page - 1, id="last-page-byte"),
]
"""Offsets in the last frame, as a function of the page size."""


@pytest.mark.parametrize("where", FLIPPED_AT)
def test_wal_flipped_byte_in_last_frame_drops_only_the_last_commit(
    built: Built, tmp_path: Path, where: Callable[[int], int]
) -> None:
    copy = crash_copy(built, tmp_path)
    offset = built.last_frame + where(built.page_size)
    with (copy / WAL_NAME).open("r+b") as wal:
        wal.seek(offset)
        byte = wal.read(1)[0]
        wal.seek(offset)
        wal.write(bytes([byte ^ 0xFF]))
    assert_opens_as(copy, built.commits[-2])

"""The verifier's workers pre-compute index rows; the store must not trust them blindly.

The hint is computed from the payload as received, before the store has checked the
payload's hash, so a tampered payload of the right size gets a hint too. These tests
show such an entry is still refused, nothing of it is indexed, and that the pool path
(many entries, several workers) indexes exactly what the single-thread path does.
"""

from __future__ import annotations

from pathlib import Path

from p2pcrew.feed import content as c
from p2pcrew.feed.entry import create_entry, lipmaa
from p2pcrew.feed.errors import PayloadHashMismatch
from p2pcrew.feed.indexing import NOT_YET, index_row
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.verify import CHUNK, Verifier
from tests.feed.helpers import key


def _chain(count: int, text: str = "hello") -> list[tuple[bytes, bytes]]:
    signer = key(7)
    ids: list[bytes] = []
    out: list[tuple[bytes, bytes]] = []
    for seq in range(1, count + 1):
        payload = c.encode_content(c.Post(text=f"{text} {seq}", time=seq))
        backlink = ids[-1] if ids else None
        lip = ids[lipmaa(seq) - 1] if seq > 1 else None
        entry = create_entry(signer, seq, backlink, lip, payload)
        ids.append(entry.id)
        out.append((entry.header, payload))
    return out


def test_prepare_gives_rows_only_where_the_size_matches() -> None:
    ((header, payload),) = _chain(1)
    verifier = Verifier(workers=1)
    [(entry, hint)] = next(verifier.prepare_chunks([(header, payload)]))
    assert entry.payload_size == len(payload)  # type: ignore[union-attr]
    assert hint == index_row(payload)
    [(_, no_hint)] = next(verifier.prepare_chunks([(header, payload + b"x")]))
    assert no_hint is NOT_YET
    [(_, deleted)] = next(verifier.prepare_chunks([(header, None)]))
    assert deleted is NOT_YET


def test_a_tampered_payload_with_a_hint_is_refused_and_not_indexed(tmp_path: Path) -> None:
    ((header, payload),) = _chain(1)
    forged = c.encode_content(c.Post(text="HELLO 1", time=1))  # same size, other text
    assert len(forged) == len(payload)
    store = SqliteStore(tmp_path / "store")
    try:
        result = store.ingest([(header, forged)])
        assert [type(r.error) for r in result.rejected] == [PayloadHashMismatch]
        assert store.count() == 0
        assert store.by_type("post") == []
    finally:
        store.close()


def test_pool_and_single_thread_index_the_same(tmp_path: Path) -> None:
    items = _chain(CHUNK * 4 + 3)
    seen = []
    for workers, name in ((1, "one"), (2, "pool")):
        store = SqliteStore(tmp_path / name, verifier=Verifier(workers=workers))
        try:
            assert len(store.ingest(items).accepted) == len(items)
            seen.append([(s.entry.id, s.entry.seq) for s in store.by_type("post")])
            assert len(store.thread_stats(None, b"\0" * 32, limit=1000)) == len(items)
        finally:
            store.close()
    assert seen[0] == seen[1] and len(seen[0]) == len(items)


def test_ingest_batches_equals_ingest_one_by_one(tmp_path: Path) -> None:
    """Verifying the next batch early changes nothing about what is accepted."""
    items = _chain(CHUNK * 5)
    tampered = list(items)
    header, payload = tampered[100]
    tampered[100] = (header, payload[:-1] + bytes([payload[-1] ^ 1]))  # one bad payload
    batches = [tampered[i : i + 70] for i in range(0, len(tampered), 70)]
    one = SqliteStore(tmp_path / "one", verifier=Verifier(workers=2))
    many = SqliteStore(tmp_path / "many", verifier=Verifier(workers=2))
    try:
        singly = [one.ingest(b) for b in batches]
        together = list(many.ingest_batches(iter(batches)))
        assert [(len(r.accepted), [x.index for x in r.rejected]) for r in singly] == [
            (len(r.accepted), [x.index for x in r.rejected]) for r in together
        ]
        assert one.latest_seqs() == many.latest_seqs()
    finally:
        one.close()
        many.close()


def test_ingest_batches_reads_one_batch_ahead_and_stops_cleanly(tmp_path: Path) -> None:
    items = _chain(CHUNK * 4)
    batches = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    pulled: list[int] = []

    def source():  # type: ignore[no-untyped-def]
        for n, batch in enumerate(batches):
            pulled.append(n)
            yield batch

    store = SqliteStore(tmp_path / "store", verifier=Verifier(workers=2))
    try:
        results = store.ingest_batches(source())
        first = next(results)
        assert len(first.accepted) == CHUNK
        assert pulled == [0, 1]  # the second batch was started before the first was stored
        results.close()  # the caller stops: the batch started ahead is dropped, not stored
        assert store.latest_seqs()[bytes(key(7).verify_key)] == CHUNK
    finally:
        store.close()

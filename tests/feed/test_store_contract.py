"""One contract, two backends: SQLite and in-memory must decide identically."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcrew.feed import content as c
from p2pcrew.feed import errors
from p2pcrew.feed.entry import create_entry, lipmaa
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.feed.sqlite_store import SqliteStore
from p2pcrew.feed.store import Store
from p2pcrew.feed.verify import Verifier
from tests.feed.helpers import key, make_chain

A, B = key(1), key(2)
A_ID, B_ID = bytes(A.verify_key), bytes(B.verify_key)


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = (
        SqliteStore(tmp_path / "store", verifier=Verifier(workers=2))
        if request.param == "sqlite"
        else MemoryStore()
    )
    yield s
    s.close()


def items(chain: list) -> list[tuple[bytes, bytes | None]]:
    return [(e.header, p) for e, p in chain]


def post(text: str, **kw: object) -> bytes:
    return c.encode_content(c.Post(text=text, time=1_700_000_000_000, **kw))  # type: ignore[arg-type]


def test_append_builds_a_valid_chain(store: Store) -> None:
    entries = store.append(A, [b"one", b"two"]) + store.append(A, [b"three"])
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].backlink == entries[0].id
    assert entries[2].lipmaa_link == entries[lipmaa(3) - 1].id
    assert store.latest_seqs() == {A_ID: 3}
    assert [s.payload for s in store.range(A_ID)] == [b"one", b"two", b"three"]


def test_ingest_accepts_in_order_and_counts_duplicates(store: Store) -> None:
    chain = make_chain(A, 200)
    result = store.ingest(items(chain))
    assert len(result.accepted) == 200 and not result.rejected
    again = store.ingest(items(chain[:10]))
    assert again.duplicates == 10 and not again.accepted
    assert store.feed(A_ID).latest_seq == 200  # type: ignore[union-attr]
    assert store.count() == 200


def test_ingest_keeps_valid_prefix_and_names_the_rule(store: Store) -> None:
    chain = make_chain(A, 6)
    forged = bytearray(chain[3][0].header)
    forged[-1] ^= 1
    batch = [*items(chain[:3]), (bytes(forged), chain[3][1]), *items(chain[4:])]
    result = store.ingest(batch)
    assert [e.seq for e in result.accepted] == [1, 2, 3]
    rules = [r.error.rule for r in result.rejected]
    assert rules == ["bad-signature", "sequence-gap", "sequence-gap"]
    assert "entry 4 of feed_" in str(result.rejected[0].error)


def test_gap_and_payload_mismatch(store: Store) -> None:
    chain = make_chain(A, 3)
    assert store.ingest(items(chain[1:2])).rejected[0].error.rule == "sequence-gap"
    bad = store.ingest([(chain[0][0].header, b"not it")])
    mismatch = errors.PayloadSizeMismatch | errors.PayloadHashMismatch
    assert isinstance(bad.rejected[0].error, mismatch)
    assert store.latest_seqs() == {}


def test_wrong_author_when_expected(store: Store) -> None:
    result = store.ingest(items(make_chain(A, 1)), expected_author=B_ID)
    assert result.rejected[0].error.rule == "wrong-author"


def test_fork_marks_feed_and_keeps_proof(store: Store) -> None:
    chain = make_chain(A, 3)
    store.ingest(items(chain))
    rival = create_entry(A, 2, chain[0][0].id, chain[0][0].id, b"rival")
    result = store.ingest([(rival.header, b"rival")])
    assert result.newly_forked == [A_ID]
    assert result.rejected[0].error.rule == "fork"
    assert store.feed(A_ID).forked  # type: ignore[union-attr]
    proof = store.forks()[0]
    assert (proof.seq, proof.first, proof.second) == (2, chain[1][0].header, rival.header)
    more = make_chain(A, 4)
    assert store.ingest(items(more[3:])).rejected[0].error.rule == "feed-forked"
    with pytest.raises(errors.FeedForked):
        store.append(A, [b"x"])


def test_fork_inside_one_batch_stops_the_feed(store: Store) -> None:
    chain = make_chain(A, 3)
    rival = create_entry(A, 2, chain[0][0].id, chain[0][0].id, b"rival")
    result = store.ingest([*items(chain[:2]), (rival.header, b"rival"), *items(chain[2:])])
    assert [r.error.rule for r in result.rejected] == ["fork", "feed-forked"]
    assert store.feed(A_ID).latest_seq == 2  # type: ignore[union-attr]


def test_header_without_payload_is_stored(store: Store) -> None:
    chain = make_chain(A, 2)
    result = store.ingest([(chain[0][0].header, None), (chain[1][0].header, chain[1][1])])
    assert len(result.accepted) == 2
    assert store.get_at(A_ID, 1).payload is None  # type: ignore[union-attr]


def test_delete_drops_payload_and_refuses_it_later(store: Store) -> None:
    [target] = store.append(A, [post("secret plan")])
    store.append(A, [c.encode_content(c.Delete(target=target.id, time=1))])
    assert store.get(target.id).payload is None  # type: ignore[union-attr]
    assert store.is_deleted(target.id)
    assert store.by_type("post") == []


def test_delete_arriving_first_wins(store: Store) -> None:
    remote = MemoryStore()
    [target] = remote.append(A, [post("oops")])
    [delete] = remote.append(A, [c.encode_content(c.Delete(target=target.id, time=1))])
    store.ingest([(target.header, None), (delete.header, remote.get(delete.id).payload)])  # type: ignore[union-attr]
    # The payload turns up later, from a peer that never saw the delete: refused.
    assert store.get(target.id).payload is None  # type: ignore[union-attr]


def test_only_the_author_may_delete(store: Store) -> None:
    [target] = store.append(A, [post("mine")])
    store.append(B, [c.encode_content(c.Delete(target=target.id, time=1))])
    assert store.get(target.id).payload is not None  # type: ignore[union-attr]


def test_threads_and_references(store: Store) -> None:
    [root] = store.append(A, [post("drill anyone?")])
    [reply] = store.append(B, [post("I have one", root=root.id, reply_to=root.id)])
    [req] = store.append(
        A, [c.encode_content(c.Request(kind="ask", title="drill", category="tools", time=2))]
    )
    [upd] = store.append(
        B, [c.encode_content(c.RequestUpdate(request=req.id, action="claim", time=3))]
    )
    assert [s.entry.id for s in store.thread(root.id)] == [root.id, reply.id]
    assert [s.entry.id for s in store.by_type("request")] == [req.id]
    assert [s.entry.id for s in store.referring(req.id, "request_update")] == [upd.id]


def test_meta_round_trip(store: Store) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", b"v")
    assert store.get_meta("k") == b"v"
    store.set_meta("k", None)
    assert store.get_meta("k") is None


def test_successor_linking_elsewhere_is_a_fork(store: Store) -> None:
    ours = make_chain(A, 3)
    rival = make_chain(A, 5, prefix=b"rival")
    store.ingest(items(ours))
    result = store.ingest(items(rival[3:]))
    assert [r.error.rule for r in result.rejected] == ["fork", "feed-forked"]
    proof = store.forks()[0]
    assert (proof.seq, proof.first, proof.second) == (3, ours[2][0].header, rival[3][0].header)


def test_peer_clocks_and_records(store: Store) -> None:
    from p2pcrew.feed.store import PeerRecord

    assert store.peer_clock(B_ID) == ({}, {})
    store.save_peer_clock(B_ID, {A_ID: 7}, {A_ID: 6, B_ID: -1})
    assert store.peer_clock(B_ID) == ({A_ID: 7}, {A_ID: 6, B_ID: -1})
    store.save_peer(PeerRecord("tcp://127.0.0.1:1#x", B_ID, "manual", last_connected=5))
    store.save_peer(PeerRecord("tcp://127.0.0.1:1#x", B_ID, "manual", last_error="refused"))
    [record] = store.known_peers()
    assert (record.last_connected, record.last_error) == (5, "refused")


def test_a_pub_stays_a_pub_when_dialled_again(store: Store) -> None:
    """`p2pcrew sync PUB` dials as "manual"; the record must still say it is the pub."""
    from p2pcrew.feed.store import PeerRecord

    store.save_peer(PeerRecord("tcp://127.0.0.1:2#y", B_ID, "pub", last_connected=1))
    store.save_peer(PeerRecord("tcp://127.0.0.1:2#y", B_ID, "manual", last_connected=2))
    store.save_peer(PeerRecord("tcp://127.0.0.1:3#z", A_ID, "lan"))
    store.save_peer(PeerRecord("tcp://127.0.0.1:3#z", A_ID, "manual"))
    sources = [(r.address[-1], r.source) for r in store.known_peers()]
    assert sources == [("y", "pub"), ("z", "manual")]


def test_raw_range_and_header_author(store: Store) -> None:
    from p2pcrew.feed.entry import header_author

    chain = make_chain(A, 4)
    store.ingest(items(chain))
    assert store.raw_range(A_ID, 2, 3) == [(e.header, p) for e, p in chain[1:3]]
    assert header_author(chain[0][0].header) == A_ID
    assert header_author(b"\x87" + chain[0][0].header[1:]) is None


def test_raw_range_stops_at_max_bytes(store: Store) -> None:
    chain = make_chain(A, 6)
    store.ingest(items(chain))
    sizes = [len(e.header) + len(p) for e, p in chain]
    everything = [(e.header, p) for e, p in chain]
    assert store.raw_range(A_ID, 1, 6, max_bytes=sum(sizes)) == everything
    assert store.raw_range(A_ID, 1, 6, max_bytes=sum(sizes[:3])) == everything[:3]
    assert store.raw_range(A_ID, 1, 6, max_bytes=sum(sizes[:3]) - 1) == everything[:2]
    assert store.raw_range(A_ID, 2, 6, max_bytes=1) == everything[1:2]  # never empty
    assert store.raw_range(A_ID, 7, 9, max_bytes=1) == []


def test_thread_stats_and_read_marks(store: Store) -> None:
    [root] = store.append(A, [post("first thread")])
    store.append(B, [post("reply", root=root.id, reply_to=root.id)])
    store.append(B, [post("another reply", root=root.id, reply_to=root.id)])
    [other] = store.append(B, [post("second thread")])
    stats = store.thread_stats(None, A_ID)
    assert [s.root.entry.id for s in stats] == [other.id, root.id]
    first = stats[1]
    assert (first.replies, first.unread) == (2, 2)  # A's own root is not unread to A
    store.mark_read(root.id, first.last_order)
    assert store.thread_stats(None, A_ID)[1].unread == 0
    assert store.read_mark(root.id) == first.last_order
    store.append(B, [post("new", root=root.id, reply_to=root.id)])
    assert store.thread_stats(None, A_ID)[0].unread == 1


def test_profile_names_latest_wins(store: Store) -> None:
    store.append(A, [c.encode_content(c.About(name="Ana", time=1))])
    store.append(A, [c.encode_content(c.About(description="hi", time=2))])
    store.append(B, [c.encode_content(c.About(name="Ben", time=1))])
    store.append(A, [c.encode_content(c.About(name="Ana K", time=3))])
    assert store.profile_names() == {A_ID: "Ana K", B_ID: "Ben"}


def test_contact_actions_latest_wins(store: Store) -> None:
    store.append(A, [c.encode_content(c.Contact(contact=B_ID, action="follow", time=1))])
    store.append(A, [c.encode_content(c.Contact(contact=B_ID, action="block", time=2))])
    store.append(B, [c.encode_content(c.Contact(contact=A_ID, action="follow", time=1))])
    assert store.contact_actions() == {A_ID: {B_ID: "block"}, B_ID: {A_ID: "follow"}}

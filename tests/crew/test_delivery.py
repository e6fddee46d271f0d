"""Delivery transparency: who is known to hold my crew posts (p2pcrew.crew.delivery).

Members are in-memory stores with a keyring attached; "replication" copies a feed's
entries from one store to another through ``Store.ingest``, exactly what a sync does
once the engine decided what to send. A relay store without keys plays the pub.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pcrew import codec, publishing
from p2pcrew.crew import delivery as d
from p2pcrew.crew import service
from p2pcrew.crew.envelope import is_envelope, seal_for_crew
from p2pcrew.crew.keyring import Keyring
from p2pcrew.crew.membership import Change
from p2pcrew.crew.state import MAX_MEMBERS
from p2pcrew.feed import content as c
from p2pcrew.feed.content_schema import MAX_CONTENT_SIZE, content_types, schema_of
from p2pcrew.feed.entry import Entry
from p2pcrew.feed.errors import InvalidContent
from p2pcrew.feed.identity import Identity, save_identity
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.feed.store import Store, now_ms
from p2pcrew.home import Home
from p2pcrew.replicate.messages import NOT_REPLICATING, note

HOUR = 3_600_000


@dataclass
class Member:
    identity: Identity
    store: Store

    @property
    def key(self) -> bytes:
        return self.identity.public_key

    def publish(self, *items: c.Content | d.CrewReceipt) -> list[Entry]:
        return publishing.publish(self.store, self.identity, list(items))  # type: ignore[arg-type]

    def publish_alone(self, item: c.Content) -> Entry:
        """Publish ``item`` and nothing else (no crew receipt riding along)."""
        payload = publishing.payload_for(self.store, self.identity, item)
        return publishing.publish_payloads(self.store, self.identity, [payload])[0]

    def post(
        self, text: str, crew: bytes, root: bytes | None = None, reply_to: bytes | None = None
    ) -> Entry:
        post = c.Post(text=text, crew=crew, root=root, reply_to=reply_to, time=now_ms())
        return self.publish(post)[0]  # a crew receipt may ride along after it


def member(n: int, store: Store | None = None) -> Member:
    identity = Identity.from_seed(bytes([n]) * 32)
    store = store if store is not None else MemoryStore()
    Keyring.attach(store, identity)
    return Member(identity, store)


def copy(src: Store, dst: Store, *feeds: bytes) -> None:
    """Replicate ``feeds`` (default: all) from ``src`` to ``dst``, in order."""
    for info in src.feeds():
        if feeds and info.author not in feeds:
            continue
        have = dst.latest_seqs().get(info.author, 0)
        if info.latest_seq > have:
            result = dst.ingest(src.raw_range(info.author, have + 1, info.latest_seq))
            assert not result.rejected


@pytest.fixture
def crew3() -> tuple[Member, Member, Member, bytes]:
    """A founded "tenants" with B and C; B and C hold A's feed."""
    a, b, cc = member(1), member(2), member(3)
    crew, payload = service.create(a.identity, "tenants", members=[b.key, cc.key])
    publishing.publish_payloads(a.store, a.identity, [payload])
    copy(a.store, b.store)
    copy(a.store, cc.store)
    return a, b, cc, crew


# --- the receipt content type ---------------------------------------------------------------


def test_receipt_is_a_registered_content_type() -> None:
    assert content_types()["crew_receipt"] is d.CrewReceipt
    schema = schema_of(d.CrewReceipt)
    assert schema is not None and schema.max_size <= MAX_CONTENT_SIZE


def test_receipt_round_trips_with_sorted_pairs() -> None:
    heads = ((b"\x01" * 32, 7), (b"\x02" * 32, 2**53 - 1))
    receipt = d.CrewReceipt(time=1, crew=b"\x09" * 32, heads=heads)
    payload = c.encode_content(receipt)  # type: ignore[arg-type]
    assert codec.decode(payload) == {
        "type": "crew_receipt",
        "time": 1,
        "crew": b"\x09" * 32,
        "heads": [[b"\x01" * 32, 7], [b"\x02" * 32, 2**53 - 1]],
    }
    decoded: object = c.decode_content(payload)
    assert decoded == receipt
    assert receipt.head(b"\x02" * 32) == 2**53 - 1 and receipt.head(b"\x03" * 32) == 0


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        ((), "1 to 64 pairs"),
        (((b"\x02" * 32, 1), (b"\x01" * 32, 1)), "sorted"),
        (((b"\x01" * 32, 1), (b"\x01" * 32, 2)), "distinct"),
        (((b"\x01" * 32, 0),), "sequence number"),
        (((b"\x01" * 32, 2**53),), "sequence number"),
        (((b"\x01" * 32, True),), "sequence number"),
        (((b"\x01" * 31, 1),), "32-byte feed id"),
        (((b"\x01" * 32,),), "pair"),
        ([(b"\x01" * 32, 1)], "tuple"),
        (tuple((bytes([i]) * 32, 1) for i in range(MAX_MEMBERS + 1)), "1 to 64 pairs"),
    ],
)
def test_receipt_heads_are_checked(heads: object, message: str) -> None:
    with pytest.raises(InvalidContent, match=message):
        d.CrewReceipt(time=1, crew=b"\x09" * 32, heads=heads)  # type: ignore[arg-type]


def test_receipt_from_the_wire_is_checked_too() -> None:
    wire = {"type": "crew_receipt", "time": 1, "crew": b"\x09" * 32, "heads": [[b"\x01" * 32]]}
    with pytest.raises(InvalidContent, match=r"crew_receipt\.heads\[0\]: must be a pair"):
        c.decode_content(codec.encode(wire))
    wire["heads"] = [[b"\x01" * 32, 1]]
    del wire["crew"]
    with pytest.raises(InvalidContent, match=r"crew_receipt\.crew: required"):
        c.decode_content(codec.encode(wire))


def test_largest_receipt_fits_and_seals() -> None:
    heads = tuple((bytes([i]) * 32, 2**53 - 1) for i in range(MAX_MEMBERS))
    receipt = d.CrewReceipt(time=2**53 - 1, crew=b"\x09" * 32, heads=heads)
    payload = c.encode_content(receipt)  # type: ignore[arg-type]
    schema = schema_of(d.CrewReceipt)
    assert schema is not None and len(payload) <= schema.max_size
    assert len(seal_for_crew(payload, b"\x05" * 32)) <= 4141  # the 4 KB bucket


def test_make_receipt_lists_co_members_it_holds_and_is_sealed(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, _cc, crew = crew3
    assert d.make_receipt(a.store, a.key, crew) is None  # A holds nobody else's feed
    receipt = d.make_receipt(b.store, b.key, crew, now=5)
    assert receipt == d.CrewReceipt(time=5, crew=crew, heads=((a.key, 1),))
    [entry] = b.publish(receipt)
    stored = b.store.get(entry.id)
    assert stored is not None and stored.payload is not None
    assert is_envelope(stored.payload) and crew not in stored.payload
    opened: object = c.decode_content(stored.plaintext or b"")
    assert opened == receipt
    copy(b.store, a.store)
    [filed] = a.store.crew_content(crew, "crew_receipt")
    assert filed.entry.id == entry.id


# --- evidence 1: direct peers' clocks -------------------------------------------------------


def test_direct_peer_clock_shows_which_posts_a_member_holds(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, cc, crew = crew3
    first = a.post("the boiler is broken again", crew)
    second = a.post("landlord replied", crew)
    pub = Identity.from_seed(b"\x07" * 32).public_key
    a.store.save_peer_clock(b.key, {a.key: note(first.seq, True)}, {})
    a.store.save_peer_clock(cc.key, {a.key: NOT_REPLICATING}, {})
    a.store.save_peer_clock(pub, {a.key: note(second.seq, False)}, {})  # not a member
    later = now_ms() + 10_000
    rows = d.delivery(a.store, a.key, crew, now=later)
    assert [(r.entry_id, r.kind, r.text) for r in rows] == [
        (second.id, "post", "landlord replied"),
        (first.id, "post", "the boiler is broken again"),
    ]
    assert [(dict(r.holders), r.members_total) for r in rows] == [
        ({}, 2),
        ({b.key: later}, 2),
    ]
    assert rows[1].via == {b.key: "peer"} and rows[1].reached == 1
    assert rows[1].missing == (cc.key,) and rows[0].missing == tuple(sorted([b.key, cc.key]))


def test_observe_remembers_when_a_clock_first_covered_a_post(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, _cc, crew = crew3
    first = a.post("one", crew)
    second = a.post("two", crew)
    t0 = now_ms() + 1_000
    a.store.save_peer_clock(b.key, {a.key: note(first.seq, True)}, {})
    assert d.observe(a.store, a.key, now=t0) == 1
    assert d.observe(a.store, a.key, now=t0 + 5) == 0  # nothing new: the log is unchanged
    a.store.save_peer_clock(b.key, {a.key: note(second.seq, True)}, {})
    assert d.observe(a.store, a.key, now=t0 + 60_000) == 1
    rows = d.delivery(a.store, a.key, crew, now=t0 + 99_000)
    assert [dict(r.holders) for r in rows] == [{b.key: t0 + 60_000}, {b.key: t0}]


def test_a_damaged_observation_log_is_ignored(crew3: tuple[Member, Member, Member, bytes]) -> None:
    a, b, _cc, crew = crew3
    a.post("one", crew)
    a.store.set_meta(d.SEEN_META, b"\xff")
    a.store.save_peer_clock(b.key, {a.key: note(3, True)}, {})
    t = now_ms() + 1_000
    assert [dict(r.holders) for r in d.delivery(a.store, a.key, crew, now=t)] == [{b.key: t}]


# --- evidence 2: receipts, for members met only through a pub --------------------------------


def test_receipt_through_a_pub_covers_a_member_never_met(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, cc, crew = crew3
    pub = MemoryStore()  # holds every feed, opens nothing
    first = a.post("meeting moved to thursday", crew)
    copy(a.store, pub)
    copy(pub, b.store)
    copy(pub, cc.store)
    [receipt] = d.due_receipts(b.store, b.key, now=now_ms())
    assert receipt.head(a.key) == first.seq
    b.publish(receipt)
    copy(b.store, pub)
    copy(pub, a.store)
    second = a.post("and bring chairs", crew)
    [latest, earlier] = d.delivery(a.store, a.key, crew)
    assert latest.entry_id == second.id and dict(latest.holders) == {}
    assert earlier.entry_id == first.id and earlier.via == {b.key: "receipt"}
    since = earlier.holders[b.key]
    assert earlier.published_at <= since <= now_ms()
    assert earlier.missing == (cc.key,)  # C got it too, but has not said so yet


def test_receipts_in_the_clear_or_by_non_members_do_not_count(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, cc, crew = crew3
    post = a.post("hello", crew)
    copy(a.store, b.store)
    copy(a.store, cc.store)
    # B publishes a receipt without the envelope: it names the crew but proves nothing.
    clear = d.CrewReceipt(time=now_ms(), crew=crew, heads=((a.key, post.seq),))
    publishing.publish_payloads(b.store, b.identity, [c.encode_content(clear)])  # type: ignore[arg-type]
    # A removes C; C (still holding the old key) then publishes a sealed receipt.
    removal = service.change(a.store, a.identity, crew, Change("remove", frozenset({cc.key})))
    publishing.publish_payloads(a.store, a.identity, [removal])
    cc.publish(d.CrewReceipt(time=now_ms(), crew=crew, heads=((a.key, post.seq),)))
    copy(b.store, a.store)
    copy(cc.store, a.store)
    [row] = d.delivery(a.store, a.key, crew)
    assert dict(row.holders) == {} and row.members_total == 1 and row.missing == (b.key,)


def test_a_receipt_head_beyond_my_feed_is_capped(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, _cc, crew = crew3
    first = a.post("one", crew)
    b.publish(d.CrewReceipt(time=now_ms(), crew=crew, heads=((a.key, 999),)))
    copy(b.store, a.store)
    [row] = d.delivery(a.store, a.key, crew)
    assert row.entry_id == first.id and set(row.holders) == {b.key}
    d_later = a.post("two", crew)  # published after the receipt: not covered by it
    rows = d.delivery(a.store, a.key, crew)
    assert rows[0].entry_id == d_later.id and dict(rows[0].holders) == {}


# --- evidence 3: answers --------------------------------------------------------------------


def test_replies_and_claims_show_the_answering_member_holds_it(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, cc, crew = crew3
    root = a.post("who has a ladder?", crew)
    mine = a.post("a reply of mine", crew, root=root.id, reply_to=root.id)
    [ask] = a.publish(
        c.Request(kind="ask", title="ladder on saturday", category="tools", crew=crew, time=1)
    )
    copy(a.store, b.store)
    copy(a.store, cc.store)
    # (Published alone: a crew receipt riding along would say all this by itself.)
    b.publish_alone(c.Post(text="me", root=root.id, reply_to=mine.id, crew=crew, time=now_ms()))
    cc.publish_alone(c.RequestUpdate(request=ask.id, action="claim", crew=crew, time=now_ms()))
    copy(b.store, a.store)
    copy(cc.store, a.store)
    rows = {r.entry_id: r for r in d.delivery(a.store, a.key, crew)}
    # B answered my reply (seq 3), C my request (seq 4), nobody the root (seq 2). Feeds
    # replicate in order: who holds an entry of mine holds every earlier one too.
    assert rows[ask.id].kind == "ask" and rows[ask.id].via == {cc.key: "answer"}
    assert rows[mine.id].kind == "reply"
    assert rows[mine.id].via == rows[root.id].via == {b.key: "answer", cc.key: "answer"}


# --- when receipts are due ------------------------------------------------------------------


def test_receipt_cadence_and_quiet_crews_stay_quiet(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, cc, crew = crew3
    t = now_ms()
    assert d.due_receipts(a.store, a.key, now=t) == []  # nothing of anyone else's yet
    [first] = d.due_receipts(b.store, b.key, now=t)  # A's crew_state is unacknowledged
    b.publish(first)
    assert d.due_receipts(b.store, b.key, now=t + 2 * HOUR) == []  # nothing new since
    a.post("news", crew)
    copy(a.store, b.store)
    assert d.due_receipts(b.store, b.key, now=t + 60_000) == []  # too soon after the last
    [riding] = d.due_receipts(b.store, b.key, now=t + 60_000, publishing=[crew])
    assert riding.head(a.key) == 2
    [hourly] = d.due_receipts(b.store, b.key, now=t + 2 * HOUR)
    assert hourly == d.CrewReceipt(time=t + 2 * HOUR, crew=crew, heads=riding.heads)
    b.publish(hourly)
    # A receives B's receipt: that alone never makes A's receipt due (no echo).
    copy(a.store, cc.store)
    cc_receipts = d.publish_due_receipts(cc.store, cc.identity, now=t)
    assert len(cc_receipts) == 1
    copy(b.store, a.store)
    copy(cc.store, a.store)
    assert d.due_receipts(a.store, a.key, now=t + 5 * HOUR) == []


def test_a_receipt_rides_along_with_a_crew_publication_only(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, _cc, crew = crew3
    public = b.publish_alone(c.Post(text="public", time=now_ms()))
    assert d.publish_riding_receipts(b.store, b.identity, [c.Post(text="x", time=1)]) == []
    post = c.Post(text="in the crew", crew=crew, time=now_ms())
    b.publish_alone(post)
    [riding] = d.publish_riding_receipts(b.store, b.identity, [post])
    assert riding.seq == public.seq + 2
    stored = b.store.get(riding.id)
    assert stored is not None and isinstance(d._receipt(stored, crew), d.CrewReceipt)
    assert d.publish_riding_receipts(b.store, b.identity, [post]) == []  # acknowledged
    # A receipt never makes a publication fail: a crew we cannot publish to is skipped.
    a.store.set_meta(publishing.RESTORE_PENDING, a.key)
    copy(b.store, a.store)
    assert d.publish_riding_receipts(a.store, a.identity, [post]) == []


def test_a_removed_member_publishes_no_receipts(
    crew3: tuple[Member, Member, Member, bytes],
) -> None:
    a, b, _cc, crew = crew3
    removal = service.change(a.store, a.identity, crew, Change("remove", frozenset({b.key})))
    publishing.publish_payloads(a.store, a.identity, [removal])
    copy(a.store, b.store)  # B cannot open the removal: it still sees itself as a member
    assert len(d.due_receipts(b.store, b.key)) == 1
    assert d.due_receipts(a.store, a.key) == []


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """The CLI points the ``p2pcrew`` logger at its data directory: undo that after."""
    logger = logging.getLogger("p2pcrew")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.handlers[:] = handlers
    logger.propagate, logger.level = propagate, level


@pytest.mark.usefixtures("cli_logging")
def test_crew_status_command_reports_reach(tmp_path: Path) -> None:
    from p2pcrew.cli import cli, crew_cmds  # noqa: F401 - registers the crew commands

    homes = [Home(tmp_path / name) for name in ("a", "b", "c")]
    people = [Identity.from_seed(bytes([n]) * 32) for n in (1, 2, 3)]
    for home, identity in zip(homes, people, strict=True):
        home.ensure()
        save_identity(identity, home.identity_path, None)
    stores = [home.open_store() for home in homes]
    try:
        a, b, cc = (member(n, s) for n, s in zip((1, 2, 3), stores, strict=True))
        crew, payload = service.create(a.identity, "tenants", members=[b.key, cc.key])
        publishing.publish_payloads(a.store, a.identity, [payload])
        post = a.post("the boiler is broken again", crew)
        copy(a.store, b.store)
        a.store.save_peer_clock(b.key, {a.key: note(post.seq, True)}, {})
    finally:
        for store in stores:
            store.close()
    runner = CliRunner()
    home_a = str(homes[0].root)
    out = runner.invoke(cli, ["--home", home_a, "crew", "status", "tenants", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["crew"] == "tenants" and data["members_total"] == 2
    [row] = data["posts"]
    assert (row["text"], row["reached"], row["members_total"]) == (
        "the boiler is broken again",
        1,
        2,
    )
    assert [h["via"] for h in row["holders"]] == ["peer"]
    out = runner.invoke(cli, ["--home", home_a, "crew", "status", "tenants"])
    assert out.exit_code == 0, out.output
    assert "reached 1 of 2  post: the boiler is broken again" in out.output
    assert "not known to have it yet: feed_" in out.output
    # The observation was logged (the store was free), so "since" no longer moves.
    again = json.loads(
        runner.invoke(cli, ["--home", home_a, "crew", "status", "tenants", "--json"]).output
    )
    assert again["posts"][0]["holders"] == row["holders"]

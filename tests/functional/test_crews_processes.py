"""Crews over real replication: separate ``p2pcrew`` processes on loopback sockets.

Each member is its own data directory driven through the real CLI. A member learns
of a crew the way a person would: someone invites them, they ``sync`` with that person
(which puts that feed in scope), and from then on the crew's state makes every member
replicate every other member's feed. Outsiders (a plain peer, a relay that fetches
every feed) must end up holding ciphertext only, down to the bytes of their database.

Setup that is not under test (identities, founding a crew with its first members) is
done in-process on data directories no node runs on; the first test does it all
through the CLI.

The last two tests need no processes: they check that crew content is accepted only
inside an envelope of its own crew (see their docstrings).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcrew import publishing
from p2pcrew.crew import service
from p2pcrew.crew.directory import crew_by_name, crew_state
from p2pcrew.crew.envelope import new_key, seal_for_crew
from p2pcrew.crew.keyring import Keyring
from p2pcrew.feed import content as c_
from p2pcrew.feed.identity import Identity
from p2pcrew.feed.memory_store import MemoryStore
from p2pcrew.home import Home
from p2pcrew.queries import Queries
from tests.functional.crew_helpers import (
    CREW,
    board,
    chain_of,
    cli_peers,
    crew_view,
    dump,
    each,
    fails,
    flip_last_byte,
    follow,
    found_crew,
    plaintext_found,
    quick_peers,
    stored_crew_view,
    sync_all,
    texts,
    wait_all_hold,
    wait_holds,
)
from tests.functional.procs import Crew, Peer, wait_until

CONVERGE_WAIT = 20.0


@pytest.fixture
def crew(tmp_path: Path) -> Iterator[Crew]:
    with Crew(tmp_path) as processes:
        yield processes


# ---- 1. three members, one thread, one request board ---------------------------------


def test_three_members_share_one_thread_and_one_request_board(crew: Crew) -> None:
    a, b, c = cli_peers(crew, "a", "b", "c")
    a.run("crew", "create", CREW)
    a.run("crew", "invite", CREW, b.feed)
    a.run("crew", "invite", CREW, c.feed)
    served_a = a.serve()
    sync_all(served_a.address, [b, c])  # puts A's feed in scope; the crew does the rest
    each(lambda p: p.serve(served_a.address), [b, c])  # live from here on

    root = a.json("post", "the boiler is broken again", "--crew", CREW)
    wait_holds(b, a, root["seq"])
    reply = b.json("reply", root["id"], "I will call the landlord")
    wait_holds(c, b, reply["seq"])  # B -> A -> C: C never dialled B
    ask = c.json("request", "new", "need a ladder on Saturday", "--crew", CREW)
    wait_holds(b, c, ask["seq"])
    claim = b.json("request", "claim", ask["id"])
    wait_holds(c, b, claim["seq"])
    c.run("request", "fulfil", ask["id"])
    wait_all_hold([a, b, c], [a, b, c])

    threads = each(lambda p: p.json("thread", root["id"]), [a, b, c])
    assert texts(threads[0]) == ["the boiler is broken again", "I will call the landlord"]
    assert threads[1] == threads[0] and threads[2] == threads[0], dump(threads)
    boards = each(board, [a, b, c])
    assert boards[1] == boards[0] and boards[2] == boards[0], dump(boards)
    [row] = boards[0]
    assert (row["title"], row["status"]) == ("need a ladder on Saturday", "fulfilled")
    assert row["claimer"] == b.feed[:13]


# ---- 2. outsiders hold ciphertext only -------------------------------------------------


def test_non_member_and_relay_hold_only_ciphertext(crew: Crew) -> None:
    a, b, n, r = quick_peers(crew, "a", "b", "n", "r")
    secrets = [
        CREW,
        "rent strike planning at Elm Court",
        "meeting moved to the laundry room",
        "bring the repair log",
        "borrow a projector for Thursday",
        "happy to lend mine",
    ]
    found_crew(a, CREW, [b], description=secrets[1])
    root = a.json("post", secrets[2], "--crew", CREW)
    served_a = a.serve()
    b.run("sync", served_a.address)
    b.run("reply", root["id"], secrets[3])
    ask = b.json("request", "new", secrets[4], "--crew", CREW)
    b.run("sync", served_a.address)
    a.run("request", "claim", ask["id"], "--note", secrets[5])
    # N is a plain peer that syncs with A; R is a relay that follows every member.
    r.run("follow", a.feed)
    r.run("follow", b.feed)
    sync_all(served_a.address, [n, r])
    assert n.latest(a.key) == a.latest(a.key) > 2  # N does hold A's crew entries
    assert r.latest(a.key) == a.latest(a.key) and r.latest(b.key) == b.latest(b.key) >= 2

    for outsider in (n, r):
        assert plaintext_found(outsider, secrets) == [], f"{outsider!r} stores plaintext"
    assert plaintext_found(a, secrets) == secrets  # the same search finds them where they are
    out = fails(n, "threads", "--crew", CREW)
    assert "no crew named 'tenants'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


# ---- 3. removal rotates the key ----------------------------------------------------------


def test_removed_member_cannot_open_what_follows(crew: Crew) -> None:
    a, b, c = quick_peers(crew, "a", "b", "c")
    found_crew(a, CREW, [b, c])
    before = a.json("post", "before removal", "--crew", CREW)
    served_a = a.serve()
    sync_all(served_a.address, [b, c])
    seen = each(lambda p: texts(p.json("thread", before["id"])), [b, c])
    assert seen == [["before removal"], ["before removal"]]

    a.run("crew", "remove", CREW, c.feed)
    after = a.json("post", "after removal", "--crew", CREW)
    a.run("reply", before["id"], "a reply after removal")
    sync_all(served_a.address, [b, c])
    assert c.latest(a.key) == b.latest(a.key) == a.latest(a.key)  # C holds the ciphertext

    secrets = ["after removal", "a reply after removal"]
    assert texts(c.json("threads", "--crew", CREW)) == ["before removal"]
    assert texts(c.json("thread", before["id"])) == ["before removal"]
    assert "no thread" in fails(c, "thread", after["id"]).stderr
    assert plaintext_found(c, secrets) == []

    b_view = crew_view(b)
    assert b_view["members"] == sorted([a.feed, b.feed]) and b_view["epoch"] == 1
    assert sorted(texts(b.json("threads", "--crew", CREW))) == ["after removal", "before removal"]
    assert texts(b.json("thread", before["id"])) == ["before removal", "a reply after removal"]
    assert plaintext_found(b, secrets) == secrets


# ---- 4. concurrent claims ----------------------------------------------------------------


def test_concurrent_claims_converge_on_one_claimer(crew: Crew) -> None:
    a, b, c = quick_peers(crew, "a", "b", "c")
    found_crew(a, CREW, [b, c])
    ask = a.json("request", "new", "someone to water plants in flat 4", "--crew", CREW)
    served_a = a.serve()
    sync_all(served_a.address, [b, c])

    # B and C claim while offline from each other: each first sees its own claim win.
    each(lambda p: p.run("request", "claim", ask["id"]), [b, c])
    before = each(board, [b, c])
    assert [rows[0]["claimer"] for rows in before] == [b.feed[:13], c.feed[:13]]

    for _ in range(2):  # after the first round A holds both claims; the second spreads them
        sync_all(served_a.address, [b, c])
    wait_all_hold([a, b, c], [b, c])
    boards = each(board, [a, b, c])
    assert boards[1] == boards[0] and boards[2] == boards[0], dump(boards)
    [row] = boards[0]
    assert row["status"] == "claimed"
    assert row["claimer"] in (b.feed[:13], c.feed[:13])

    # Delivery transparency: A's node knows both synced its request (their clocks).
    [mine] = a.json("crew", "status", CREW)["posts"]
    assert (mine["id"], mine["reached"], mine["members_total"]) == (ask["id"], 2, 2)
    assert sorted(h["feed"] for h in mine["holders"]) == sorted([b.feed, c.feed])


# ---- 4b. delivery status for a member met only through a relay --------------------------


def test_status_shows_a_member_met_only_through_a_relay(crew: Crew) -> None:
    a, c, r = quick_peers(crew, "a", "c", "r")
    found_crew(a, CREW, [c])
    follow(r, a, c)  # R relays both feeds; A and C never meet
    follow(c, a)  # how C first fetches A's feed (and so the crew) from R
    post = a.json("post", "is the boiler fixed?", "--crew", CREW)
    served_r = r.serve()
    a.run("sync", served_r.address)
    c.run("sync", served_r.address)
    c.run("post", "a new thread from c", "--crew", CREW)  # a receipt rides along with it
    c.run("sync", served_r.address)
    a.run("sync", served_r.address)
    assert a.latest(c.key) == c.latest(c.key)
    [mine] = a.json("crew", "status", CREW)["posts"]
    assert (mine["id"], mine["reached"], mine["members_total"]) == (post["id"], 1, 1)
    assert [(h["feed"], h["via"]) for h in mine["holders"]] == [(c.feed, "receipt")]


# ---- 5. concurrent membership changes ----------------------------------------------------


def test_concurrent_membership_changes_converge_and_neither_is_lost(crew: Crew) -> None:
    """A adds D while B renames the crew, both on epoch 0. The smaller entry id wins
    everywhere; the losing change must then be re-applied on top (docs/crews.md 3.2),
    so that in the end everyone, D included, sees epoch 2 with both changes."""
    a, b, c, d = quick_peers(crew, "a", "b", "c", "d")
    found_crew(a, CREW, [b, c])
    served_a = a.serve()
    sync_all(served_a.address, [b, c])

    changes: list[tuple[Peer, tuple[str, ...]]] = [
        (a, ("crew", "invite", CREW, d.feed)),
        (b, ("crew", "rename", CREW, "elm court tenants")),  # B is offline
    ]
    each(lambda job: job[0].run(*job[1]), changes)
    everyone = sorted(p.feed for p in (a, b, c, d))
    assert stored_crew_view(a) == [(CREW, 1, everyone)]
    assert stored_crew_view(b) == [("elm court tenants", 1, sorted([a.feed, b.feed, c.feed]))]

    each(lambda p: p.serve(served_a.address), [b, c, d])
    expected = [("elm court tenants", 2, everyone)]
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: all(stored_crew_view(p) == expected for p in (a, b, c, d)),
            CONVERGE_WAIT,
            "every member to see both changes",
        )
    views = each(crew_view, [a, b, c, d])
    assert all(v == views[0] for v in views), f"members disagree: {dump(views)}"
    assert (views[0]["name"], views[0]["members"], views[0]["epoch"]) == (
        "elm court tenants",
        everyone,
        2,
    ), f"a change was lost: {dump(views)}"


# ---- 6. tampered and wrongly keyed envelopes ---------------------------------------------


def test_tampered_and_wrongly_keyed_envelopes_stay_sealed(crew: Crew) -> None:
    a, b, c = quick_peers(crew, "a", "b", "c")
    m = Identity.generate()  # a member whose client is broken (or hostile)
    found_crew(a, CREW, [b, c, m.public_key])
    a.run("post", "a genuine post by a", "--crew", CREW)
    served_a = a.serve()
    sync_all(served_a.address, [b, c])

    with b.reading() as store:
        crew_id = crew_by_name(store, CREW)
        key = crew_state(store, crew_id).key

    def sealed(text: str, under: bytes) -> bytes:
        post = c_.Post(text=text, crew=crew_id, time=c_.now_ms())
        return seal_for_crew(c_.encode_content(post), under)

    good = sealed("a genuine post by m", key)
    chain = chain_of(
        m,
        [
            good,
            flip_last_byte(good),  # corrupted ciphertext, validly signed by its author
            sealed("wrongly keyed secret", new_key()),
            sealed("flipped in transit", key),
        ],
    )
    items = [(entry.header, payload) for entry, payload in chain]
    items[3] = (items[3][0], flip_last_byte(chain[3][1]))  # no longer what was signed
    home = Home(b.home)
    with contextlib.closing(home.open_store()) as store:  # B runs no node right now
        Keyring.attach(store, home.load_identity())
        result = store.ingest(items)
        assert [e.seq for e in result.accepted] == [1, 2, 3]
        assert [(r.index, r.error.rule) for r in result.rejected] == [(3, "payload-hash-mismatch")]
        opened = [store.get(entry.id) for entry, _ in chain[:3]]
        assert [s is not None and s.plaintext is not None for s in opened] == [True, False, False]

    served_b = b.serve()
    c.run("sync", served_b.address)  # C fetches M's feed (a co-member's) from B
    assert c.latest(m.public_key) == 3
    for peer in (b, c):
        shown = sorted(texts(peer.json("threads", "--crew", CREW)))
        assert shown == ["a genuine post by a", "a genuine post by m"], f"{peer!r}: {shown}"
        assert plaintext_found(peer, ["wrongly keyed secret", "flipped in transit"]) == []
        peer.check()


# ---- crew content is accepted only inside its own crew's envelope (no processes) --------


def _store_of(identity: Identity) -> MemoryStore:
    store = MemoryStore()
    Keyring.attach(store, identity)
    return store


def test_crew_content_in_the_clear_is_not_crew_content() -> None:
    """A post that names a crew but is not sealed must not join the crew's threads.

    Anyone who ever knew the crew id (a removed member keeps it forever) could
    otherwise post into the crew without any of its keys.
    """
    a, x = Identity.generate(), Identity.generate()
    store = _store_of(a)
    crew_id, payload = service.create(a, CREW)
    publishing.publish_payloads(store, a, [payload])
    outsider = MemoryStore()
    clear = c_.encode_content(c_.Post(text="injected in the clear", crew=crew_id, time=1))
    publishing.publish_payloads(outsider, x, [clear])
    assert not store.ingest(outsider.raw_range(x.public_key, 1, 1)).rejected
    shown = [t.root.post.text for t in Queries(store, a.public_key).threads(crew_id)]
    assert shown == [], "a plaintext payload naming a crew is shown as crew content"


def test_crew_content_sealed_for_another_crew_is_not_shown_in_this_one() -> None:
    """Content opened with crew X's key that claims to belong to crew Y is not Y's.

    A member of X who knows Y's id (say, a former member of Y) must not be able to
    post into Y with X's key, around Y's membership and removals.
    """
    a, m = Identity.generate(), Identity.generate()
    store = _store_of(a)
    x, x_state = service.create(a, "x crew", members=[m.public_key])
    y, y_state = service.create(a, "y crew")
    publishing.publish_payloads(store, a, [x_state, y_state])
    m_store = _store_of(m)
    m_store.ingest(store.raw_range(a.public_key, 1, 2))
    smuggled = c_.encode_content(c_.Post(text="posted into y with x's key", crew=y, time=1))
    publishing.publish_payloads(m_store, m, [seal_for_crew(smuggled, crew_state(m_store, x).key)])
    assert not store.ingest(m_store.raw_range(m.public_key, 1, 1)).rejected
    shown = [t.root.post.text for t in Queries(store, a.public_key).threads(y)]
    assert shown == [], "content sealed under crew X's key is shown in crew Y"

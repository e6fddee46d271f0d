"""Thread ordering, orphans, depth, unread counts and mentions (pure functions)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcrew.feed.content import Post
from p2pcrew.feed.threads import (
    MAX_DISPLAY_DEPTH,
    PostItem,
    ThreadView,
    build_thread,
    mentions_of,
    summarize_thread,
    thread_list,
)

A = bytes([1]) * 32
B = bytes([2]) * 32
C = bytes([3]) * 32
ME = bytes([7]) * 32
CREW = bytes([9]) * 32
T0 = 1_700_000_000_000

_seqs: dict[bytes, int] = {}


def h(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=32).digest()


def post(
    label: str,
    author: bytes = A,
    *,
    time: int = T0,
    root: PostItem | None = None,
    reply_to: PostItem | bytes | None = None,
    order: int = 0,
    seq: int | None = None,
    mentions: tuple[bytes, ...] = (),
    crew: bytes | None = None,
) -> PostItem:
    """A post item; ``seq`` defaults to the author's next one, so creation order is
    feed order (as it is for a real author)."""
    if seq is None:
        seq = _seqs[author] = _seqs.get(author, 0) + 1
    parent = reply_to.id if isinstance(reply_to, PostItem) else reply_to
    content = Post(
        time=time,
        text=label,
        root=None if root is None else root.id,
        reply_to=parent,
        mentions=mentions,
        crew=crew,
    )
    return PostItem(id=h(label), author=author, seq=seq, post=content, received_order=order)


def shape(view: ThreadView) -> list[tuple[str, int]]:
    return [(line.item.post.text, line.depth) for line in view.lines]


ROOT = post("root", A, time=T0)


def test_replies_nest_under_their_parent_ordered_by_time() -> None:
    r1 = post("r1", B, time=T0 + 10, root=ROOT)
    r2 = post("r2", C, time=T0 + 5, root=ROOT)
    r1a = post("r1a", A, time=T0 + 20, root=ROOT, reply_to=r1)
    r1b = post("r1b", C, time=T0 + 15, root=ROOT, reply_to=r1)
    r1a1 = post("r1a1", B, time=T0 + 30, root=ROOT, reply_to=r1a)
    view = build_thread(ROOT, [r1a1, r1, r1a, r2, r1b])
    assert shape(view) == [("r2", 1), ("r1", 1), ("r1b", 2), ("r1a", 2), ("r1a1", 3)]
    assert [line.parent for line in view.lines] == [ROOT.id, ROOT.id, r1.id, r1.id, r1a.id]
    assert view.reply_count == 5
    assert view.orphan_count == 0


def test_reply_to_the_root_explicitly_is_a_direct_reply() -> None:
    r = post("explicit", B, time=T0 + 1, root=ROOT, reply_to=ROOT)
    assert shape(build_thread(ROOT, [r])) == [("explicit", 1)]


def test_a_reply_is_never_dated_before_its_parent() -> None:
    r1 = post("slow clock parent", B, time=T0 + 100, root=ROOT)
    sibling = post("sibling", C, time=T0 + 60, root=ROOT, reply_to=r1)
    late_clock = post("late clock", A, time=T0 + 1, root=ROOT, reply_to=r1)
    view = build_thread(ROOT, [r1, sibling, late_clock])
    times = {line.item.post.text: line.effective_time for line in view.lines}
    assert times == {"slow clock parent": T0 + 100, "sibling": T0 + 100, "late clock": T0 + 100}
    # Both clamped to the parent: the tie goes to the lower feed id (A).
    assert shape(view) == [("slow clock parent", 1), ("late clock", 2), ("sibling", 2)]


def test_one_authors_replies_keep_feed_order_despite_clock() -> None:
    first = post("first", C, time=T0 + 50, root=ROOT, seq=10)
    second = post("second", C, time=T0 + 20, root=ROOT, seq=11)  # clock went back
    other = post("other", B, time=T0 + 30, root=ROOT)
    assert shape(build_thread(ROOT, [second, other, first])) == [
        ("other", 1),
        ("first", 1),
        ("second", 1),
    ]


def test_ties_break_by_feed_id_then_seq_then_entry_id() -> None:
    by_c = post("by c", C, time=T0 + 5, root=ROOT)
    by_b = post("by b", B, time=T0 + 5, root=ROOT)
    forked_1 = post("fork one", A, time=T0 + 5, root=ROOT, seq=99)
    forked_2 = post("fork two", A, time=T0 + 5, root=ROOT, seq=99)
    view = build_thread(ROOT, [by_c, forked_2, by_b, forked_1])
    forks = sorted([forked_1, forked_2], key=lambda p: p.id)
    assert [line.item for line in view.lines] == [*forks, by_b, by_c]


def test_orphans_wait_at_the_end_then_slot_into_place() -> None:
    r1 = post("r1", B, time=T0 + 10, root=ROOT)
    parent = post("parent", C, time=T0 + 20, root=ROOT, reply_to=r1)
    orphan = post("orphan", A, time=T0 + 30, root=ROOT, reply_to=parent)
    orphan_child = post("orphan child", B, time=T0 + 40, root=ROOT, reply_to=orphan)
    later = post("later", C, time=T0 + 90, root=ROOT)

    before = build_thread(ROOT, [orphan_child, orphan, later, r1])
    assert shape(before) == [("r1", 1), ("later", 1), ("orphan", 1), ("orphan child", 2)]
    tail = before.lines[2:]
    assert [line.orphaned for line in before.lines] == [False, False, True, True]
    assert [line.missing_parent for line in tail] == [parent.id, None]
    assert before.orphan_count == 2

    after = build_thread(ROOT, [orphan_child, orphan, later, r1, parent])
    assert shape(after) == [
        ("r1", 1),
        ("parent", 2),
        ("orphan", 3),
        ("orphan child", 4),
        ("later", 1),
    ]
    assert after.orphan_count == 0
    assert all(line.missing_parent is None for line in after.lines)


def test_orphan_branches_are_ordered_among_themselves() -> None:
    missing = h("never arrived")
    late = post("late orphan", B, time=T0 + 50, root=ROOT, reply_to=missing)
    early = post("early orphan", C, time=T0 + 5, root=ROOT, reply_to=missing)
    view = build_thread(ROOT, [late, early])
    assert shape(view) == [("early orphan", 1), ("late orphan", 1)]
    assert [line.missing_parent for line in view.lines] == [missing, missing]


def test_depth_is_capped_for_display() -> None:
    chain = [ROOT]
    for i in range(10):
        chain.append(post(f"d{i + 1}", B, time=T0 + i, root=ROOT, reply_to=chain[-1]))
    view = build_thread(ROOT, chain[1:])
    assert [line.true_depth for line in view.lines] == list(range(1, 11))
    assert [line.depth for line in view.lines] == [1, 2, 3, 4, 5, 6, 6, 6, 6, 6]
    assert max(line.depth for line in view.lines) == MAX_DISPLAY_DEPTH


def test_a_very_deep_chain_does_not_recurse() -> None:
    chain = [ROOT]
    for i in range(5000):
        chain.append(post(f"deep {i}", B, time=T0 + i, root=ROOT, reply_to=chain[-1], seq=i + 1))
    view = build_thread(ROOT, reversed(chain[1:]))
    assert view.lines[-1].true_depth == 5000
    assert view.lines[-1].depth == MAX_DISPLAY_DEPTH


def test_posts_outside_the_thread_are_ignored() -> None:
    crew_root = post("crew root", A, crew=CREW)
    member = post("member reply", B, time=T0 + 1, root=crew_root, crew=CREW)
    public = post("public reply", C, time=T0 + 2, root=crew_root)  # not in the crew
    elsewhere = post("other thread", C, time=T0 + 3, root=ROOT, crew=CREW)
    view = build_thread(crew_root, [member, public, elsewhere, member, crew_root])
    assert shape(view) == [("member reply", 1)]


def test_a_fabricated_reply_cycle_is_shown_not_looped() -> None:
    x_id, y_id = h("x"), h("y")
    x = post("x", B, time=T0 + 1, root=ROOT, reply_to=y_id)
    y = post("y", C, time=T0 + 2, root=ROOT, reply_to=x_id)
    assert (x.id, y.id) == (x_id, y_id)
    view = build_thread(ROOT, [x, y])
    assert sorted(line.item.post.text for line in view.lines) == ["x", "y"]
    assert all(line.orphaned for line in view.lines)


@st.composite
def threads(draw: st.DrawFn) -> list[PostItem]:
    """A random reply tree, some replies missing their parent, arbitrary clocks."""
    authors = [A, B, C]
    replies: list[PostItem] = []
    seqs = dict.fromkeys(authors, 1)
    n = draw(st.integers(0, 25))
    for i in range(n):
        author = draw(st.sampled_from(authors))
        seqs[author] += draw(st.integers(1, 2))
        choice = draw(st.integers(-2, len(replies) - 1))
        parent: PostItem | bytes | None
        if choice == -2:
            parent = h("missing", i)
        elif choice == -1:
            parent = None
        else:
            parent = replies[choice]
        replies.append(
            post(
                f"p{i}",
                author,
                time=T0 + draw(st.integers(-20, 20)),
                root=ROOT,
                reply_to=parent,
                seq=seqs[author],
                order=i,
            )
        )
    return replies


@settings(max_examples=200, deadline=None)
@given(replies=threads(), data=st.data())
def test_thread_is_independent_of_arrival_order(
    replies: list[PostItem], data: st.DataObject
) -> None:
    expected = build_thread(ROOT, replies)
    assert build_thread(ROOT, data.draw(st.permutations(replies))) == expected
    # Every reply appears once; each placed reply comes after its parent, deeper by one.
    assert sorted(line.item.id for line in expected.lines) == sorted(p.id for p in replies)
    position = {line.item.id: i for i, line in enumerate(expected.lines)}
    for i, line in enumerate(expected.lines):
        if line.parent in position:
            parent_line = expected.lines[position[line.parent]]
            assert position[line.parent] < i
            assert line.true_depth == parent_line.true_depth + 1
            assert line.orphaned == parent_line.orphaned
            assert line.effective_time >= parent_line.effective_time
        elif line.parent == ROOT.id:
            assert (line.true_depth, line.orphaned) == (1, False)
        else:
            assert (line.missing_parent, line.orphaned, line.true_depth) == (line.parent, True, 1)
    # Orphan branches come last.
    flags = [line.orphaned for line in expected.lines]
    assert flags == sorted(flags)


@settings(max_examples=100, deadline=None)
@given(replies=threads(), data=st.data())
def test_orphans_slot_in_when_their_parent_arrives(
    replies: list[PostItem], data: st.DataObject
) -> None:
    # Receiving any subset first and the rest later ends at the same view as all at once.
    first = data.draw(st.lists(st.sampled_from(replies), unique=True)) if replies else []
    build_thread(ROOT, first)
    assert build_thread(ROOT, [*first, *replies]) == build_thread(ROOT, replies)


# --- Thread list and unread ------------------------------------------------------------


def test_unread_counts_posts_after_last_seen_but_not_mine() -> None:
    root = post("t root", A, order=3)
    mine = post("my reply", ME, time=T0 + 1, root=root, order=8)
    new = post("new reply", B, time=T0 + 2, root=root, order=9)
    old = post("old reply", C, time=T0 + 3, root=root, order=5)
    summary = summarize_thread(root, [mine, new, old], 6, me=ME)
    assert (summary.reply_count, summary.last_activity, summary.unread) == (3, 9, 1)
    never_opened = summarize_thread(root, [mine, new, old], None, me=ME)
    assert never_opened.unread == 3  # root, new, old
    all_seen = summarize_thread(root, [mine, new, old], 9, me=ME)
    assert all_seen.unread == 0
    without_me = summarize_thread(root, [mine, new, old], 6)
    assert without_me.unread == 2


def test_thread_list_newest_activity_first() -> None:
    quiet = post("quiet", A, order=1)
    busy = post("busy", B, order=2)
    fresh = post("fresh", C, order=20)
    busy_reply = post("busy reply", C, time=T0 + 1, root=busy, order=30)
    stray = post("stray", C, time=T0 + 1, root=fresh, crew=CREW, order=99)  # not in thread
    rows = thread_list(
        [(quiet, []), (busy, [busy_reply]), (fresh, [stray])],
        {busy.id: 2, quiet.id: 1},
        me=ME,
    )
    assert [(r.root.post.text, r.last_activity, r.unread, r.reply_count) for r in rows] == [
        ("busy", 30, 1, 1),
        ("fresh", 20, 1, 0),
        ("quiet", 1, 0, 0),
    ]


def test_mentions_of_me_newest_first() -> None:
    hi = post("hi @me", A, mentions=(ME,), order=4)
    later = post("@me and @b", B, mentions=(B, ME), order=9)
    not_me = post("@b only", C, mentions=(B,), order=10)
    self_mention = post("note to @me", ME, mentions=(ME,), order=11)
    found = mentions_of(ME, [hi, not_me, later, self_mention, hi])
    assert found == [later, hi]

"""Threads, the thread list with unread counts, and mentions (pure view logic, no I/O).

A thread is a root post and the replies that name it as ``root``. Replies arrive from
many feeds in any order, often before the post they answer, so the display order is
recomputed from the set of posts each time rather than kept as replies arrive:
``build_thread`` is a pure function, and a reply that was shown as an orphan moves to
its place as soon as the caller passes its parent too.

Rules (the wording that docs/crews.md copies)
---------------------------------------------

**Tree.** A reply's parent is its ``reply_to`` post, or the root when ``reply_to`` is
absent. Replies are shown depth first: every post is followed by its replies, each
followed by theirs. Indentation is capped at ``MAX_DISPLAY_DEPTH`` levels so that a
long back-and-forth stays readable at 80 columns; ``ThreadLine.true_depth`` keeps the
real depth.

**Order among replies to one post.** Each post gets an *effective time*::

    effective(p) = max(p.time, effective(parent), p.time of every earlier post
                       (lower seq) by p's author in this thread)

(an orphan, below, has the root's effective time in place of its parent's), and
replies to the same post are ordered by ``(effective time, author feed id, seq, entry
id)``. So a reply is never dated before what it answers, one author's replies to a
post keep their feed order whatever their clock said, and the rest goes by claimed
time, with feed id, seq and entry id only to break ties the same way on every peer.
Claimed time is the author's word; it only orders siblings, and a wrong clock can
only move a reply among the replies to the same post.

**Orphans.** A reply whose parent has not arrived (or is not in this thread) cannot be
placed. It is shown after the placed replies with ``missing_parent`` set to the id it
waits for; replies to it are nested under it as usual (marked ``orphaned``). When the
parent arrives, the next ``build_thread`` places the whole branch.

**Membership.** A reply belongs to the thread only if its ``root`` is the root's id and
its ``crew`` is the root's crew (a post outside the crew is not shown inside a crew's
thread, where everyone would assume only members can read it). Other posts passed in
are ignored, as are duplicates of one entry id.

**Unread.** A post is unread when its local ``received_order`` is greater than the
``last_seen_order`` recorded for the thread (every post when there is none), except
one's own posts. The thread list is ordered by last activity (the greatest received
order in the thread), newest first. Received order is local arrival, not claimed time,
so an old post that arrives today counts as new activity: it is new to this reader.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from p2pcrew.feed.content import Post

__all__ = [
    "MAX_DISPLAY_DEPTH",
    "PostItem",
    "ThreadLine",
    "ThreadSummary",
    "ThreadView",
    "build_thread",
    "mentions_of",
    "summarize_thread",
    "thread_list",
    "thread_replies",
]

MAX_DISPLAY_DEPTH: Final = 6
"""Deepest indentation shown: six two-column steps still leave 68 columns of text."""


@dataclass(frozen=True, slots=True)
class PostItem:
    """A post entry as the store layer hands it over."""

    id: bytes
    author: bytes
    seq: int
    post: Post
    received_order: int
    """Local arrival order (``StoredEntry.order``); larger is newer."""


@dataclass(frozen=True, slots=True)
class ThreadLine:
    """One reply in display order."""

    item: PostItem
    depth: int
    """Indentation level: 1 for a direct reply to the root (or an orphan), at most
    ``MAX_DISPLAY_DEPTH``."""
    true_depth: int
    """Uncapped depth; within an orphan branch, counted from the orphan (1)."""
    parent: bytes
    """The id of the post this answers (the root's id for a direct reply)."""
    effective_time: int
    orphaned: bool
    """In a branch whose top is waiting for its parent; shown after the placed replies."""
    missing_parent: bytes | None
    """On the top line of an orphan branch: the id of the post that has not arrived."""


@dataclass(frozen=True, slots=True)
class ThreadView:
    root: PostItem
    lines: tuple[ThreadLine, ...]
    """Placed replies depth first, then orphan branches."""

    @property
    def reply_count(self) -> int:
        return len(self.lines)

    @property
    def orphan_count(self) -> int:
        """Replies not yet placed (orphan tops and their replies)."""
        return sum(1 for line in self.lines if line.orphaned)


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One row of the thread list."""

    root: PostItem
    reply_count: int
    last_activity: int
    """The greatest ``received_order`` of the root and its replies."""
    unread: int
    """Posts (root included) received after ``last_seen_order``, not counting one's own."""


def _parent(item: PostItem, root_id: bytes) -> bytes:
    reply_to = item.post.reply_to
    return root_id if reply_to is None else reply_to


def thread_replies(root: PostItem, replies: Iterable[PostItem]) -> list[PostItem]:
    """The posts among ``replies`` that belong to ``root``'s thread, once each.

    Belonging: ``root`` names this root and the crew matches (module docstring). The
    result is sorted by entry id so that nothing downstream depends on input order.
    """
    found: dict[bytes, PostItem] = {}
    for item in replies:
        if item.id != root.id and item.post.root == root.id and item.post.crew == root.post.crew:
            found[item.id] = item
    return [found[k] for k in sorted(found)]


def _effective_times(root: PostItem, posts: Sequence[PostItem]) -> dict[bytes, int]:
    """Effective time of every reply (module docstring), computed without recursion so
    that a reply chain thousands deep cannot exhaust the stack."""
    # Latest claimed time so far in each author's feed order.
    author_floor: dict[bytes, int] = {}
    by_author: dict[bytes, list[PostItem]] = defaultdict(list)
    for p in posts:
        by_author[p.author].append(p)
    for items in by_author.values():
        running = -1
        for p in sorted(items, key=lambda p: (p.seq, p.id)):
            running = max(running, p.post.time)
            author_floor[p.id] = running
    by_id = {p.id: p for p in posts}
    eff: dict[bytes, int] = {root.id: root.post.time}
    for p in posts:
        # Climb to the nearest ancestor whose time is known (the root, or one done
        # earlier, or a missing post), then fill the times back down the chain.
        chain: list[PostItem] = []
        on_chain: set[bytes] = set()
        node: PostItem | None = p
        while node is not None and node.id not in eff and node.id not in on_chain:
            chain.append(node)
            on_chain.add(node.id)
            node = by_id.get(_parent(node, root.id))
        # Above the chain: a known time, a missing parent (orphan: floor at the root),
        # or a cycle (impossible with hash ids; treated like an orphan).
        above = eff[node.id] if node is not None and node.id in eff else root.post.time
        for q in reversed(chain):
            above = max(above, author_floor[q.id])
            eff[q.id] = above
    return eff


def build_thread(root: PostItem, replies: Iterable[PostItem]) -> ThreadView:
    """The thread's replies in display order with depth and orphan information.

    Pure and independent of the order of ``replies``; see the module docstring for
    the rules.
    """
    posts = thread_replies(root, replies)
    eff = _effective_times(root, posts)

    def key(p: PostItem) -> tuple[int, bytes, int, bytes]:
        return (eff[p.id], p.author, p.seq, p.id)

    children: dict[bytes, list[PostItem]] = defaultdict(list)
    for p in posts:
        children[_parent(p, root.id)].append(p)
    for siblings in children.values():
        siblings.sort(key=key)

    lines: list[ThreadLine] = []
    placed: set[bytes] = set()

    def walk(start: list[PostItem], orphan_top: PostItem | None) -> None:
        """Append ``start`` and their descendants depth first (iteratively: reply
        chains can be deeper than Python's recursion limit)."""
        stack = [(p, 1) for p in reversed(start)]
        while stack:
            p, depth = stack.pop()
            if p.id in placed:
                continue
            placed.add(p.id)
            parent = _parent(p, root.id)
            lines.append(
                ThreadLine(
                    item=p,
                    depth=min(depth, MAX_DISPLAY_DEPTH),
                    true_depth=depth,
                    parent=parent,
                    effective_time=eff[p.id],
                    orphaned=orphan_top is not None,
                    missing_parent=parent if p is orphan_top else None,
                )
            )
            stack.extend((c, depth + 1) for c in reversed(children.get(p.id, [])))

    walk(children.get(root.id, []), None)
    present = {p.id for p in posts} | {root.id}
    for top in sorted((p for p in posts if _parent(p, root.id) not in present), key=key):
        walk([top], top)
    # Only a reply cycle can be left, which hash-linked ids make impossible; show such
    # posts anyway (as orphans) rather than lose them if an input was fabricated.
    for top in sorted((p for p in posts if p.id not in placed), key=key):
        walk([top], top)
    return ThreadView(root=root, lines=tuple(lines))


def summarize_thread(
    root: PostItem,
    replies: Iterable[PostItem],
    last_seen_order: int | None,
    *,
    me: bytes | None = None,
) -> ThreadSummary:
    """One thread-list row. ``last_seen_order`` None means the thread was never opened."""
    posts = [root, *thread_replies(root, replies)]
    unread = sum(
        1
        for p in posts
        if p.author != me and (last_seen_order is None or p.received_order > last_seen_order)
    )
    return ThreadSummary(
        root=root,
        reply_count=len(posts) - 1,
        last_activity=max(p.received_order for p in posts),
        unread=unread,
    )


def thread_list(
    roots_with_replies: Iterable[tuple[PostItem, Iterable[PostItem]]],
    last_seen: Mapping[bytes, int],
    *,
    me: bytes | None = None,
) -> list[ThreadSummary]:
    """Summaries of threads, most recent activity first (ties by root id).

    ``last_seen`` maps a root id to the ``received_order`` the reader had seen when
    they last opened that thread. Pass ``me`` so one's own posts never count as unread.
    """
    summaries = [
        summarize_thread(root, replies, last_seen.get(root.id), me=me)
        for root, replies in roots_with_replies
    ]
    summaries.sort(key=lambda s: (-s.last_activity, s.root.id))
    return summaries


def mentions_of(me: bytes, posts: Iterable[PostItem]) -> list[PostItem]:
    """Posts by others that mention ``me``, most recently received first."""
    found = {p.id: p for p in posts if me in p.post.mentions and p.author != me}
    return sorted(found.values(), key=lambda p: (-p.received_order, p.id))

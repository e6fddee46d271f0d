"""The small query API the CLI and the terminal app read through.

It turns store rows into the pure view models of ``feed.threads`` and
``feed.requests`` and never exposes SQL or protocol internals. ``crew=None`` means
public content; a crew id selects that crew's (already decrypted) content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from p2pcrew.feed import content as c
from p2pcrew.feed.errors import InvalidContent
from p2pcrew.feed.requests import RequestItem, RequestView, UpdateItem, board, request_state
from p2pcrew.feed.store import Store, StoredEntry
from p2pcrew.feed.threads import PostItem, ThreadView, build_thread

BoardFilter = Literal["open", "mine", "claimed", "due-soon", "all"]


@dataclass(frozen=True, slots=True)
class ThreadRow:
    root: PostItem
    replies: int
    last_activity: int
    unread: int


def decode(stored: StoredEntry) -> c.Content | None:
    data = stored.content_bytes
    if data is None:
        return None
    try:
        return c.decode_content(data)
    except InvalidContent:
        return None


def post_item(stored: StoredEntry) -> PostItem | None:
    item = decode(stored)
    if not isinstance(item, c.Post):
        return None
    e = stored.entry
    return PostItem(e.id, e.author, e.seq, item, stored.order)


class Queries:
    def __init__(self, store: Store, me: bytes) -> None:
        self.store = store
        self.me = me

    def threads(self, crew: bytes | None = None, limit: int = 200) -> list[ThreadRow]:
        rows = []
        for stats in self.store.thread_stats(crew, self.me, limit):
            root = post_item(stats.root)
            if root is not None:
                rows.append(ThreadRow(root, stats.replies, stats.last_order, stats.unread))
        return rows

    def thread(self, root_id: bytes) -> ThreadView | None:
        found = self.store.thread(root_id)
        items = [p for p in (post_item(s) for s in found) if p is not None]
        root = next((p for p in items if p.id == root_id), None)
        if root is None:
            return None
        return build_thread(root, [p for p in items if p.id != root_id])

    def mark_thread_read(self, view: ThreadView) -> None:
        last = max([view.root.received_order, *(line.item.received_order for line in view.lines)])
        self.store.mark_read(view.root.id, last)

    def requests(
        self, crew: bytes | None = None, which: BoardFilter = "open", now_ms: int | None = None
    ) -> list[RequestView]:
        stored = (
            self.store.by_type("request")
            if crew is None
            else self.store.crew_content(crew, "request")
        )
        views = [v for v in (self.request_view(s) for s in stored) if v is not None]
        return board(views, self.me, now_ms if now_ms is not None else c.now_ms(), which)

    def request(self, request_id: bytes) -> RequestView | None:
        stored = self.store.get(request_id)
        return self.request_view(stored) if stored is not None else None

    def request_view(self, stored: StoredEntry) -> RequestView | None:
        item = decode(stored)
        if not isinstance(item, c.Request):
            return None
        e = stored.entry
        updates = []
        for s in self.store.referring(e.id, "request_update"):
            update = decode(s)
            if isinstance(update, c.RequestUpdate):
                updates.append(UpdateItem(s.entry.id, s.entry.author, s.entry.seq, update))
        return request_state(RequestItem(e.id, e.author, e.seq, item), updates)

    def names(self) -> dict[bytes, str]:
        """Display names from public about entries, the latest per author winning."""
        return self.store.profile_names()

"""What the screens read from the store, gathered in one call per screen.

Plain functions over ``Store`` and ``Queries`` (no textual, no node): the app calls
them from worker threads (the store serialises its connection with a lock), so a
large store never blocks the event loop, and they turn rows into the view models of
``viewmodels`` right away.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from p2pcrew.crew.directory import crew_state, crew_states
from p2pcrew.feed.ids import feed_id_to_text
from p2pcrew.feed.requests import RequestView, allowed_actions
from p2pcrew.feed.store import Store
from p2pcrew.feed.threads import ThreadView
from p2pcrew.queries import Queries, ThreadRow
from p2pcrew.tui import viewmodels as vm

PUBLIC_NAME = "Public"


@dataclass(frozen=True, slots=True)
class MainData:
    crews: list[vm.CrewInfo]
    threads: list[vm.ThreadListRow]
    crew: bytes | None
    crew_name: str


@dataclass(frozen=True, slots=True)
class ThreadData:
    view: ThreadView
    lines: list[vm.PostLine]
    title: str


@dataclass(frozen=True, slots=True)
class BoardData:
    rows: list[vm.RequestRow]
    views: dict[bytes, RequestView]
    crew_name: str


@dataclass(frozen=True, slots=True)
class Member:
    feed: bytes
    label: str


def crew_threads(store: Store, queries: Queries) -> list[tuple[vm.CrewInfo, list[ThreadRow]]]:
    """Every crew we hold keys for (sorted by name), then the public pseudo-crew, each
    with its thread rows (one query per crew: the unread count and the list share it)."""
    me = queries.me
    out = []
    for s in crew_states(store):
        rows = queries.threads(s.crew)
        out.append(
            (vm.CrewInfo(s.crew, s.name, len(s.members), me in s.members, _unread(rows)), rows)
        )
    rows = queries.threads(None)
    out.append((vm.CrewInfo(None, PUBLIC_NAME, 0, True, _unread(rows)), rows))
    return out


def _unread(rows: list[ThreadRow]) -> int:
    return sum(row.unread for row in rows)


def crew_name(store: Store, crew: bytes | None) -> str:
    if crew is None:
        return PUBLIC_NAME
    return crew_state(store, crew).name


def main_data(store: Store, queries: Queries, crew: bytes | None, now_ms: int) -> MainData:
    """The crews list and one crew's threads; an unknown crew falls back to the first."""
    found = crew_threads(store, queries)
    chosen = next((pair for pair in found if pair[0].crew == crew), found[0])
    rows = vm.thread_rows(chosen[1], queries.names(), queries.me, now_ms)
    return MainData([info for info, _ in found], rows, chosen[0].crew, chosen[0].name)


def thread_data(queries: Queries, root: bytes, now_ms: int) -> ThreadData | None:
    """A thread with its display lines; marks it read (None: the root is not here)."""
    view = queries.thread(root)
    if view is None:
        return None
    queries.mark_thread_read(view)
    lines = vm.thread_lines(view, queries.names(), queries.me, now_ms)
    return ThreadData(view, lines, vm.first_line(view.root.post.text, 60))


def board_data(
    store: Store, queries: Queries, crew: bytes | None, tab: vm.BoardTab, now_ms: int
) -> BoardData:
    views = queries.requests(crew, vm.board_query(tab), now_ms)
    rows = vm.board_rows(views, tab, queries.names(), queries.me, now_ms)
    return BoardData(rows, {v.id: v for v in views}, crew_name(store, crew))


def request_panel(
    queries: Queries, view: RequestView, now_ms: int, tz: tzinfo
) -> tuple[list[str], str]:
    """(detail lines, action hints) for the selected request."""
    names = queries.names()
    detail = vm.request_detail(view, names, queries.me, now_ms, tz)
    return detail, vm.action_hints(allowed_actions(view, queries.me))


def members(store: Store, queries: Queries, crew: bytes) -> list[Member]:
    state = crew_state(store, crew)
    names = queries.names()
    found = [Member(feed, _member_label(feed, names, queries.me)) for feed in state.members]
    return sorted(found, key=lambda m: (m.feed != queries.me, m.label.casefold(), m.feed))


def _member_label(feed: bytes, names: dict[bytes, str], me: bytes) -> str:
    label = vm.display_name(feed, names)
    text_id = feed_id_to_text(feed)
    suffix = " (you)" if feed == me else ""
    return f"{label}{suffix}  {text_id}"

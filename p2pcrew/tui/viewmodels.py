"""Store rows to display rows: plain functions with plain unit tests (no textual here).

Everything a screen shows as text is decided here, so that the rule "nothing is
conveyed by colour alone" can be tested without a terminal: unread marks read
"• 3 new", a request's state is a word in brackets, an orphaned reply says so.
Times are relative to a ``now`` the caller passes (the app's clock, frozen in tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Final, Literal

import segno

from p2pcrew.feed.content import RequestAction
from p2pcrew.feed.ids import feed_id_to_text, short
from p2pcrew.feed.requests import RequestView
from p2pcrew.feed.threads import ThreadView
from p2pcrew.queries import ThreadRow

MINUTE: Final = 60_000
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

BoardTab = Literal["open", "mine", "claimed-by-me", "due-soon", "all"]
BOARD_TABS: Final[tuple[tuple[BoardTab, str], ...]] = (
    ("open", "Open"),
    ("mine", "Mine"),
    ("claimed-by-me", "Claimed by me"),
    ("due-soon", "Due soon"),
    ("all", "All"),
)

ACTION_KEYS: Final[dict[RequestAction, tuple[str, str]]] = {
    "claim": ("c", "Claim"),
    "unclaim": ("u", "Unclaim"),
    "fulfil": ("f", "Mark fulfilled"),
    "withdraw": ("w", "Withdraw"),
    "reopen": ("o", "Reopen"),
}
"""The key and label of each request action (the board's bindings use the same keys)."""


# --- small pieces ---------------------------------------------------------------------


def display_name(feed: bytes, names: Mapping[bytes, str], me: bytes | None = None) -> str:
    """A person's chosen name, "you" for oneself, else a short feed id."""
    if feed == me:
        return "you"
    name = names.get(feed)
    if name:
        return name
    try:
        return short(feed_id_to_text(feed))
    except ValueError:
        return feed.hex()[:12]


def unread_badge(unread: int) -> str:
    """ "• 3 new" (text, so it survives any colour scheme), or "" when nothing is new."""
    return f"• {unread} new" if unread > 0 else ""


def relative_time(then_ms: int, now_ms: int) -> str:
    """ "just now", "5m ago", "3h ago", "2d ago", then a date; future times say "in"."""
    delta = now_ms - then_ms
    if delta < 0:
        return f"in {_span(-delta)}"
    if delta < MINUTE:
        return "just now"
    if delta < 14 * DAY:
        return f"{_span(delta)} ago"
    return datetime.fromtimestamp(then_ms / 1000, UTC).strftime("%Y-%m-%d")


def _span(ms: int) -> str:
    if ms < HOUR:
        return f"{max(1, ms // MINUTE)}m"
    if ms < DAY:
        return f"{ms // HOUR}h"
    return f"{ms // DAY}d"


def first_line(text: str, width: int) -> str:
    """The first non-empty line of ``text``, cut to ``width`` with an ellipsis."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: max(1, width - 1)] + "…"


def plural(n: int, word: str, words: str | None = None) -> str:
    """ "1 reply", "3 replies" (pass the plural when it is not ``word + "s"``)."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"


# --- crews and threads --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrewInfo:
    """What the facade reports about one crew (``crew`` None: the public pseudo-crew)."""

    crew: bytes | None
    name: str
    members: int
    member: bool
    unread: int


@dataclass(frozen=True, slots=True)
class CrewRow:
    key: str
    """A stable option id: "public" or the crew id in hex."""
    crew: bytes | None
    label: str


def crew_key(crew: bytes | None) -> str:
    return "public" if crew is None else crew.hex()


def crew_rows(crews: Sequence[CrewInfo]) -> list[CrewRow]:
    """One line per crew: name, then the unread mark; a crew we left says so."""
    rows = []
    for info in crews:
        label = info.name
        if info.crew is not None and not info.member:
            label += " (left)"
        badge = unread_badge(info.unread)
        rows.append(CrewRow(crew_key(info.crew), info.crew, f"{label}  {badge}".rstrip()))
    return rows


@dataclass(frozen=True, slots=True)
class ThreadListRow:
    root: bytes
    title: str
    meta: str
    """Author, reply count, time and the unread mark, e.g. "Ben · 3 replies · 2h ago"."""
    unread: str


def thread_rows(
    rows: Iterable[ThreadRow], names: Mapping[bytes, str], me: bytes, now_ms: int
) -> list[ThreadListRow]:
    """Thread list rows in the order given (the query returns newest activity first)."""
    out = []
    for row in rows:
        post = row.root.post
        meta = " · ".join(
            [
                display_name(row.root.author, names, me),
                plural(row.replies, "reply", "replies"),
                relative_time(post.time, now_ms),
            ]
        )
        out.append(
            ThreadListRow(row.root.id, first_line(post.text, 200), meta, unread_badge(row.unread))
        )
    return out


@dataclass(frozen=True, slots=True)
class PostLine:
    id: bytes
    indent: int
    """Indentation in columns (two per level)."""
    heading: str
    body: str


def thread_lines(
    view: ThreadView, names: Mapping[bytes, str], me: bytes, now_ms: int
) -> list[PostLine]:
    """The root, then every reply depth first, indented by depth (capped by the view)."""
    root = view.root
    lines = [
        PostLine(
            root.id,
            0,
            f"{display_name(root.author, names, me)} · {relative_time(root.post.time, now_ms)}",
            root.post.text,
        )
    ]
    for line in view.lines:
        item = line.item
        heading = (
            f"{display_name(item.author, names, me)} · {relative_time(item.post.time, now_ms)}"
        )
        if line.missing_parent is not None:
            heading += " · replying to a post not received yet"
        lines.append(PostLine(item.id, 2 * line.depth, heading, item.post.text))
    return lines


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestRow:
    id: bytes
    status: str
    """In brackets, so it reads without colour: "[open]", "[claimed by you]"."""
    title: str
    meta: str


def status_text(view: RequestView, names: Mapping[bytes, str], me: bytes) -> str:
    if view.status == "claimed" and view.claimer is not None:
        return f"[claimed by {display_name(view.claimer, names, me)}]"
    if view.status == "open" and view.reopened:
        return "[reopened]"
    return f"[{view.status}]"


def due_text(needed_by: int | None, now_ms: int) -> str:
    """ "due in 2d", "overdue 3h". Rounded to the nearest unit: a request made a minute
    ago for two days from then is due in 2d, not 1d."""
    if needed_by is None:
        return ""
    if needed_by < now_ms:
        return f"overdue {_span(now_ms - needed_by)}"
    left = needed_by - now_ms
    unit = DAY if left >= DAY else HOUR if left >= HOUR else MINUTE
    return f"due in {_span(round(left / unit) * unit)}"


def board_query(tab: BoardTab) -> Literal["open", "mine", "claimed", "due-soon", "all"]:
    """The ``Queries.requests`` filter behind a tab ("claimed by me" narrows "claimed")."""
    return "claimed" if tab == "claimed-by-me" else tab


def board_rows(
    views: Iterable[RequestView],
    tab: BoardTab,
    names: Mapping[bytes, str],
    me: bytes,
    now_ms: int,
) -> list[RequestRow]:
    rows = []
    for view in views:
        if tab == "claimed-by-me" and view.claimer != me:
            continue
        req = view.request
        bits = [req.kind, req.category, f"by {display_name(view.author, names, me)}"]
        bits += [b for b in (due_text(req.needed_by, now_ms), req.place or "") if b]
        rows.append(RequestRow(view.id, status_text(view, names, me), req.title, " · ".join(bits)))
    return rows


def request_detail(
    view: RequestView, names: Mapping[bytes, str], me: bytes, now_ms: int, tz: tzinfo = UTC
) -> list[str]:
    """The request, its history and any updates that lost a race, as lines of text
    (the needed-by date in ``tz``, the person's own time zone)."""
    req = view.request
    who = display_name(view.author, names, me)
    lines = [f"{req.title}  {status_text(view, names, me)}"]
    lines.append(f"{req.kind} · {req.category} · by {who} · {relative_time(req.time, now_ms)}")
    if req.needed_by is not None:
        lines.append(f"Needed by {_date(req.needed_by, tz)} ({due_text(req.needed_by, now_ms)})")
    if req.place:
        lines.append(f"Where: {req.place}")
    if req.body:
        lines += ["", *req.body.splitlines()]
    if view.history:
        lines += ["", "History:"]
        for step in view.history:
            actor = display_name(step.item.author, names, me)
            when = relative_time(step.effective_time, now_ms)
            lines.append(f"  {actor}: {step.item.update.action} ({when})")
    for rejected in view.rejected:
        actor = display_name(rejected.item.author, names, me)
        lines.append(f"  not applied: {actor}'s {rejected.item.update.action}: {rejected.reason}")
    return lines


def action_hints(actions: Iterable[RequestAction]) -> str:
    """ "c Claim · f Mark fulfilled", or a sentence saying nothing can be done."""
    parts = [f"{ACTION_KEYS[a][0]} {ACTION_KEYS[a][1]}" for a in actions]
    return " · ".join(parts) if parts else "No actions available to you on this request."


def _date(ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M %Z").rstrip()


# --- peers, sync and addresses ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A connected or known peer as the facade reports it."""

    feed: bytes
    address: str
    source: str
    connected: bool
    in_sync: bool
    received: int
    sent: int
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class SyncStatus:
    peers: int
    behind: int
    """Entries connected peers announced that we do not hold yet."""
    receiving: bool
    """Entries arrived within the last few seconds."""
    received_total: int
    network: Literal["off", "starting", "on", "failed"]


NO_PEERS_HINT: Final = "No peers connected: pair by address (p2pcrew sync ADDRESS), or join a pub."


def sync_line(status: SyncStatus) -> str:
    """The status bar's words: the network state, peers, and progress while syncing."""
    if status.network == "off":
        return "Network off."
    if status.network == "starting":
        return "Starting the network…"
    if status.network == "failed":
        return "Network unavailable; see the log (p2pcrew locate)."
    if status.peers == 0:
        return NO_PEERS_HINT
    text = f"{plural(status.peers, 'peer')} connected"
    if status.behind > 0:
        return f"{text} · syncing: {status.behind:,} entries to fetch"
    if status.receiving:
        return f"{text} · receiving entries…"
    return f"{text} · in sync"


def peer_rows(
    peers: Iterable[PeerInfo], names: Mapping[bytes, str], me: bytes
) -> list[tuple[str, str, str, str, str]]:
    """(who, how we know them, state, traffic, address) for the peers table."""
    rows = []
    for peer in peers:
        if peer.connected:
            state = "connected, in sync" if peer.in_sync else "connected, syncing"
        else:
            state = f"offline: {peer.last_error}" if peer.last_error else "offline"
        traffic = f"↓{peer.received} ↑{peer.sent}" if peer.connected else ""
        rows.append((display_name(peer.feed, names, me), peer.source, state, traffic, peer.address))
    return rows


def qr_lines(text: str) -> list[str]:
    """``text`` as a QR code in half-block characters: each text row holds two module
    rows. Meant to be drawn dark-on-light (a block is a dark module). The border is two
    modules; the widget's light padding widens the quiet zone to what scanners need,
    which keeps an address's code inside 24 rows."""
    qr = segno.make(text, error="l", micro=False)
    matrix = [[int(bool(m)) for m in row] for row in qr.matrix_iter(scale=1, border=2)]
    if len(matrix) % 2:
        matrix.append([0] * len(matrix[0]))
    glyphs = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}
    return [
        "".join(glyphs[(a, b)] for a, b in zip(top, bottom, strict=True))
        for top, bottom in zip(matrix[::2], matrix[1::2], strict=True)
    ]


def delivery_line(
    has: Sequence[bytes], unknown: Sequence[bytes], names: Mapping[bytes, str]
) -> str:
    """Who already holds my latest post in a crew thread, in words."""
    if not has and not unknown:
        return ""
    parts = []
    if has:
        parts.append("delivered to " + ", ".join(display_name(f, names) for f in has))
    if unknown:
        parts.append("not seen yet by " + ", ".join(display_name(f, names) for f in unknown))
    return "Your latest post here: " + "; ".join(parts) + "."

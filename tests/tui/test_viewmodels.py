"""View models: plain functions from store rows to display rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from p2pcrew.feed import content as c
from p2pcrew.feed.requests import RequestItem, UpdateItem, request_state
from p2pcrew.feed.threads import PostItem, build_thread
from p2pcrew.queries import ThreadRow
from p2pcrew.tui import viewmodels as vm
from p2pcrew.tui.inputs import parse_needed_by
from p2pcrew.tui.themes import THEMES, next_theme

NOW = 1_750_000_000_000
ANA, BEN, CLEO = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
NAMES = {ANA: "Ana", BEN: "Ben"}


def post(
    ident: int,
    author: bytes,
    text: str,
    *,
    root: bytes | None = None,
    reply_to: bytes | None = None,
    time: int = NOW,
) -> PostItem:
    item = c.Post(text=text, root=root, reply_to=reply_to, time=time)
    return PostItem(bytes([ident]) * 32, author, ident, item, ident)


def test_unread_badge_is_words_not_colour() -> None:
    assert vm.unread_badge(0) == ""
    assert vm.unread_badge(1) == "• 1 new"
    assert vm.unread_badge(12) == "• 12 new"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (0, "just now"),
        (59_999, "just now"),
        (5 * vm.MINUTE, "5m ago"),
        (3 * vm.HOUR, "3h ago"),
        (2 * vm.DAY, "2d ago"),
        (-2 * vm.HOUR, "in 2h"),
        (20 * vm.DAY, "2025-05-26"),
    ],
)
def test_relative_time(delta: int, text: str) -> None:
    assert vm.relative_time(NOW - delta, NOW) == text


def test_display_name_prefers_names_then_short_id() -> None:
    assert vm.display_name(ANA, NAMES, me=ANA) == "you"
    assert vm.display_name(BEN, NAMES, me=ANA) == "Ben"
    assert vm.display_name(CLEO, NAMES).startswith("feed_")
    assert len(vm.display_name(CLEO, NAMES)) == len("feed_") + 8


def test_first_line_and_plural() -> None:
    assert vm.first_line("\n  hello there\nsecond", 100) == "hello there"
    assert vm.first_line("abcdefghij", 5) == "abcd…"
    assert vm.plural(1, "reply", "replies") == "1 reply"
    assert vm.plural(3, "reply", "replies") == "3 replies"
    assert vm.plural(2, "peer") == "2 peers"


def test_crew_rows_mark_unread_and_left_crews() -> None:
    rows = vm.crew_rows(
        [
            vm.CrewInfo(b"\x09" * 32, "Garden", 3, True, 4),
            vm.CrewInfo(b"\x0a" * 32, "Old", 2, False, 0),
            vm.CrewInfo(None, "Public", 0, True, 0),
        ]
    )
    assert [r.label for r in rows] == ["Garden  • 4 new", "Old (left)", "Public"]
    assert rows[2].key == "public" and rows[0].key == (b"\x09" * 32).hex()


def test_thread_rows() -> None:
    root = post(1, BEN, "Seed swap?\nBring envelopes", time=NOW - 3 * vm.HOUR)
    rows = vm.thread_rows([ThreadRow(root, 3, 10, 2)], NAMES, ANA, NOW)
    assert rows[0].title == "Seed swap?"
    assert rows[0].meta == "Ben · 3 replies · 3h ago"
    assert rows[0].unread == "• 2 new"


def test_thread_lines_indent_by_depth_and_mark_orphans() -> None:
    root = post(1, BEN, "root")
    a = post(2, ANA, "a", root=root.id)
    b = post(3, BEN, "b", root=root.id, reply_to=a.id)
    orphan = post(4, CLEO, "lost", root=root.id, reply_to=b"\x63" * 32)
    lines = vm.thread_lines(build_thread(root, [a, b, orphan]), NAMES, ANA, NOW)
    assert [(ln.body, ln.indent) for ln in lines] == [("root", 0), ("a", 2), ("b", 4), ("lost", 2)]
    assert lines[1].heading == "you · just now"
    assert lines[3].heading.endswith("replying to a post not received yet")


def request(kind: c.RequestKind = "ask", needed_by: int | None = None) -> RequestItem:
    item = c.Request(
        kind=kind,
        title="Drill",
        category="tools",
        needed_by=needed_by,
        place="Elm St",
        time=NOW - vm.HOUR,
    )
    return RequestItem(b"\x20" * 32, BEN, 1, item)


def test_board_rows_and_claimed_by_me() -> None:
    req = request(needed_by=NOW + 2 * vm.DAY)
    claim = UpdateItem(
        b"\x21" * 32, ANA, 1, c.RequestUpdate(request=req.id, action="claim", time=NOW)
    )
    view = request_state(req, [claim])
    rows = vm.board_rows([view], "claimed-by-me", NAMES, ANA, NOW)
    assert rows[0].status == "[claimed by you]"
    assert rows[0].meta == "ask · tools · by Ben · due in 2d · Elm St"
    assert vm.board_rows([view], "claimed-by-me", NAMES, CLEO, NOW) == []
    assert vm.board_query("claimed-by-me") == "claimed"
    assert vm.board_query("open") == "open"


def test_request_detail_lists_history_and_lost_races() -> None:
    req = request(needed_by=NOW - vm.HOUR)
    updates = [
        UpdateItem(b"\x21" * 32, ANA, 1, c.RequestUpdate(request=req.id, action="claim", time=NOW)),
        UpdateItem(
            b"\x22" * 32, CLEO, 1, c.RequestUpdate(request=req.id, action="claim", time=NOW + 1)
        ),
    ]
    lines = vm.request_detail(request_state(req, updates), NAMES, ANA, NOW)
    assert lines[0] == "Drill  [claimed by you]"
    assert "overdue 1h" in lines[2]
    assert any("you: claim" in line for line in lines)
    assert any(line.startswith("  not applied:") and "already claimed" in line for line in lines)


def test_due_text_rounds_ahead_and_floors_overdue() -> None:
    assert vm.due_text(None, NOW) == ""
    assert vm.due_text(NOW + 2 * vm.DAY - 5_000, NOW) == "due in 2d"
    assert vm.due_text(NOW + 90 * vm.MINUTE, NOW) == "due in 2h"
    assert vm.due_text(NOW + 10 * vm.MINUTE, NOW) == "due in 10m"
    assert vm.due_text(NOW - 90 * vm.MINUTE, NOW) == "overdue 1h"


def test_action_hints() -> None:
    assert vm.action_hints(("claim",)) == "c Claim"
    assert vm.action_hints(("unclaim", "fulfil")) == "u Unclaim · f Mark fulfilled"
    assert vm.action_hints(()).startswith("No actions")


def test_parse_needed_by() -> None:
    assert parse_needed_by("", NOW) is None
    assert parse_needed_by("+5h", NOW) == NOW + 5 * vm.HOUR
    assert parse_needed_by("3d", NOW) == NOW + 3 * vm.DAY
    end = datetime(2025, 6, 1, 23, 59, tzinfo=UTC).timestamp() * 1000
    assert parse_needed_by("2025-06-01", NOW) == end
    at = datetime(2025, 6, 1, 18, 0, tzinfo=UTC).timestamp() * 1000
    assert parse_needed_by("2025-06-01 18:00", NOW) == at
    tomorrow = parse_needed_by("Tomorrow", NOW)
    assert tomorrow is not None and NOW < tomorrow <= NOW + 2 * vm.DAY
    with pytest.raises(ValueError, match="use a date"):
        parse_needed_by("next week", NOW)


def status(**kw: object) -> vm.SyncStatus:
    base: dict[str, object] = {
        "peers": 2,
        "behind": 0,
        "receiving": False,
        "received_total": 0,
        "network": "on",
    }
    base.update(kw)
    return vm.SyncStatus(**base)  # type: ignore[arg-type]


def test_sync_line() -> None:
    assert vm.sync_line(status(peers=0)) == vm.NO_PEERS_HINT
    assert "p2pcrew sync ADDRESS" in vm.NO_PEERS_HINT and "pub" in vm.NO_PEERS_HINT
    assert vm.sync_line(status()) == "2 peers connected · in sync"
    assert (
        vm.sync_line(status(peers=1, behind=1234))
        == "1 peer connected · syncing: 1,234 entries to fetch"
    )
    assert vm.sync_line(status(receiving=True)).endswith("receiving entries…")
    assert vm.sync_line(status(network="off")) == "Network off."
    assert vm.sync_line(status(network="starting")).startswith("Starting")


def test_peer_rows() -> None:
    peers = [
        vm.PeerInfo(BEN, "tcp://10.0.0.2:8008#x", "lan", True, True, 5, 7),
        vm.PeerInfo(CLEO, "tcp://10.0.0.3:8008#y", "manual", False, False, 0, 0, "refused"),
    ]
    rows = vm.peer_rows(peers, NAMES, ANA)
    assert rows[0] == ("Ben", "lan", "connected, in sync", "↓5 ↑7", "tcp://10.0.0.2:8008#x")
    assert rows[1][2] == "offline: refused" and rows[1][3] == ""


def test_delivery_line() -> None:
    assert vm.delivery_line([], [], NAMES) == ""
    line = vm.delivery_line([BEN], [ANA], NAMES)
    assert line == "Your latest post here: delivered to Ben; not seen yet by Ana."


def test_qr_lines_are_half_blocks_that_decode_to_the_modules() -> None:
    import segno

    text = "tcp://192.168.1.20:8008#feed_" + "a" * 52
    lines = vm.qr_lines(text)
    matrix = [list(r) for r in segno.make(text, error="l").matrix_iter(scale=1, border=2)]
    assert len(lines) == (len(matrix) + 1) // 2 and len(lines[0]) == len(matrix[0])
    top = {"█": 1, "▀": 1, "▄": 0, " ": 0}
    assert [top[ch] for ch in lines[1]] == [int(bool(m)) for m in matrix[2]]
    assert len(lines) <= 22  # fits an 80x24 terminal


def test_themes_cycle() -> None:
    assert next_theme(THEMES[0]) == THEMES[1]
    assert next_theme(THEMES[-1]) == THEMES[0]
    assert next_theme("something-else") == THEMES[0]

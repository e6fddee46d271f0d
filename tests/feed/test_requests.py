"""Request lifecycle, concurrent updates and the requests board (pure functions)."""

from __future__ import annotations

import hashlib
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcrew.feed.content import REQUEST_ACTIONS, Request, RequestAction, RequestUpdate
from p2pcrew.feed.ids import feed_id_to_text, short
from p2pcrew.feed.requests import (
    DUE_SOON_MS,
    BoardFilter,
    RequestItem,
    RequestStatus,
    RequestView,
    UpdateItem,
    allowed_actions,
    board,
    request_state,
)

A = bytes([1]) * 32  # the request's author
B = bytes([2]) * 32
C = bytes([3]) * 32
D = bytes([4]) * 32
CREW = bytes([9]) * 32
T0 = 1_700_000_000_000
HOUR = 3_600_000


def h(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=32).digest()


def req(
    author: bytes = A,
    *,
    time: int = T0,
    needed_by: int | None = None,
    crew: bytes | None = None,
    title: str = "need a drill Saturday",
    seq: int = 1,
) -> RequestItem:
    request = Request(
        time=time, kind="ask", title=title, category="tools", needed_by=needed_by, crew=crew
    )
    return RequestItem(id=h("req", author, seq, title), author=author, seq=seq, request=request)


REQ = req()


def upd(
    author: bytes,
    seq: int,
    action: RequestAction,
    time: int = T0,
    *,
    target: RequestItem = REQ,
    crew: bytes | None = None,
) -> UpdateItem:
    update = RequestUpdate(time=time, request=target.id, action=action, crew=crew)
    return UpdateItem(
        id=h("upd", author, seq, action, time, target.id), author=author, seq=seq, update=update
    )


def state(*updates: UpdateItem, target: RequestItem = REQ) -> RequestView:
    return request_state(target, list(updates))


# --- Setups reaching each state, and the full permission table ---------------------------

SETUPS: dict[RequestStatus, list[UpdateItem]] = {
    "open": [],
    "claimed": [upd(B, 10, "claim", T0 + 1)],
    "fulfilled": [upd(B, 10, "claim", T0 + 1), upd(B, 11, "fulfil", T0 + 2)],
    "withdrawn": [upd(A, 10, "withdraw", T0 + 1)],
}
ROLES = {"author": A, "claimer": B, "other": C}
# (state, action) -> outcome for (author, claimer, other): a new status or a reject code.
# B is the claimer in "claimed" and "fulfilled"; elsewhere B is just another member.
TABLE: dict[tuple[RequestStatus, RequestAction], tuple[str, str, str]] = {
    ("open", "claim"): ("own-request", "claimed", "claimed"),
    ("open", "unclaim"): ("wrong-state", "wrong-state", "wrong-state"),
    ("open", "fulfil"): ("fulfilled", "not-author", "not-author"),
    ("open", "withdraw"): ("withdrawn", "not-author", "not-author"),
    ("open", "reopen"): ("wrong-state", "wrong-state", "wrong-state"),
    ("claimed", "claim"): ("already-claimed", "already-claimed", "already-claimed"),
    ("claimed", "unclaim"): ("open", "open", "not-claimer"),
    ("claimed", "fulfil"): ("fulfilled", "fulfilled", "not-author"),
    ("claimed", "withdraw"): ("withdrawn", "not-author", "not-author"),
    ("claimed", "reopen"): ("wrong-state", "wrong-state", "wrong-state"),
    ("fulfilled", "claim"): ("wrong-state", "wrong-state", "wrong-state"),
    ("fulfilled", "unclaim"): ("wrong-state", "wrong-state", "wrong-state"),
    ("fulfilled", "fulfil"): ("wrong-state", "wrong-state", "wrong-state"),
    ("fulfilled", "withdraw"): ("wrong-state", "wrong-state", "wrong-state"),
    ("fulfilled", "reopen"): ("open", "not-author", "not-author"),
    ("withdrawn", "claim"): ("wrong-state", "wrong-state", "wrong-state"),
    ("withdrawn", "unclaim"): ("wrong-state", "wrong-state", "wrong-state"),
    ("withdrawn", "fulfil"): ("wrong-state", "wrong-state", "wrong-state"),
    ("withdrawn", "withdraw"): ("wrong-state", "wrong-state", "wrong-state"),
    ("withdrawn", "reopen"): ("open", "not-author", "not-author"),
}
STATUSES = ("open", "claimed", "fulfilled", "withdrawn")
CASES = [
    (status, action, role, TABLE[status, action][i])
    for status, action in TABLE
    for i, role in enumerate(ROLES)
]


def test_table_covers_every_state_and_action() -> None:
    assert set(TABLE) == {(s, a) for s in STATUSES for a in REQUEST_ACTIONS}


@pytest.mark.parametrize(("status", "action", "role", "outcome"), CASES)
def test_permission_table(
    status: RequestStatus, action: RequestAction, role: str, outcome: str
) -> None:
    setup = SETUPS[status]
    before = state(*setup)
    assert before.status == status
    actor = ROLES[role]
    u = upd(actor, 20, action, T0 + 100)
    after = state(*setup, u)
    if outcome in STATUSES:
        assert after.status == outcome
        assert after.history[-1].item == u
        assert after.history[-1].status == outcome
        assert after.rejected == ()
        assert action in allowed_actions(before, actor)
    else:
        assert (after.status, after.claimer) == (before.status, before.claimer)
        assert after.history == before.history
        assert [(r.item, r.code) for r in after.rejected] == [(u, outcome)]
        assert after.rejected[0].reason
        assert action not in allowed_actions(before, actor)


def test_claim_sets_claimer_and_unclaim_clears_it() -> None:
    claimed = state(upd(B, 1, "claim", T0 + 1))
    assert (claimed.status, claimed.claimer) == ("claimed", B)
    for who in (A, B):
        released = state(upd(B, 1, "claim", T0 + 1), upd(who, 5, "unclaim", T0 + 2))
        assert (released.status, released.claimer) == ("open", None)


def test_fulfil_keeps_the_claimer_as_who_helped() -> None:
    by_claimer = state(upd(B, 1, "claim", T0 + 1), upd(B, 2, "fulfil", T0 + 2))
    by_author = state(upd(B, 1, "claim", T0 + 1), upd(A, 2, "fulfil", T0 + 2))
    assert (by_claimer.status, by_claimer.claimer) == ("fulfilled", B)
    assert (by_author.status, by_author.claimer) == ("fulfilled", B)
    solved_alone = state(upd(A, 2, "fulfil", T0 + 2))
    assert (solved_alone.status, solved_alone.claimer) == ("fulfilled", None)


def test_former_claimer_cannot_fulfil_after_unclaiming() -> None:
    view = state(
        upd(B, 1, "claim", T0 + 1), upd(B, 2, "unclaim", T0 + 2), upd(B, 3, "fulfil", T0 + 3)
    )
    assert view.status == "open"
    assert [r.code for r in view.rejected] == ["not-author"]


def test_withdraw_while_claimed_drops_the_claimer() -> None:
    view = state(upd(B, 1, "claim", T0 + 1), upd(A, 2, "withdraw", T0 + 2))
    assert (view.status, view.claimer) == ("withdrawn", None)


def test_reopen_after_withdraw_then_claim_again() -> None:
    steps = [upd(A, 2, "withdraw", T0 + 1), upd(A, 3, "reopen", T0 + 2)]
    reopened = state(*steps)
    assert (reopened.status, reopened.claimer, reopened.reopened) == ("open", None, True)
    claimed = state(*steps, upd(C, 1, "claim", T0 + 3))
    assert (claimed.status, claimed.claimer, claimed.reopened) == ("claimed", C, False)
    assert [s.status for s in claimed.history] == ["withdrawn", "open", "claimed"]


def test_reopen_after_fulfil_clears_the_claimer() -> None:
    view = state(
        upd(B, 1, "claim", T0 + 1), upd(B, 2, "fulfil", T0 + 2), upd(A, 3, "reopen", T0 + 3)
    )
    assert (view.status, view.claimer, view.reopened) == ("open", None, True)
    assert view.updated_at == T0 + 3


def test_reasons_name_the_claimer() -> None:
    view = state(upd(B, 1, "claim", T0 + 1), upd(C, 1, "claim", T0 + 2))
    (rejected,) = view.rejected
    assert rejected.code == "already-claimed"
    assert rejected.other == B
    assert rejected.reason == f"already claimed by {short(feed_id_to_text(B))}"
    again = state(upd(B, 1, "claim", T0 + 1), upd(B, 2, "claim", T0 + 2))
    assert again.rejected[0].reason == "already claimed by you"
    stranger = state(upd(B, 1, "claim", T0 + 1), upd(C, 1, "unclaim", T0 + 2))
    assert stranger.rejected[0].code == "not-claimer"
    assert stranger.rejected[0].other == B
    assert short(feed_id_to_text(B)) in stranger.rejected[0].reason


def test_update_from_another_crew_is_rejected() -> None:
    crew_req = req(crew=CREW)
    outsider = upd(B, 1, "claim", T0 + 1, target=crew_req)  # crew None: posted in public
    member = upd(C, 1, "claim", T0 + 2, target=crew_req, crew=CREW)
    view = state(outsider, member, target=crew_req)
    assert (view.status, view.claimer) == ("claimed", C)
    assert [(r.item, r.code) for r in view.rejected] == [(outsider, "other-crew")]
    # And a crew update cannot act on a public request.
    public = state(upd(B, 1, "claim", T0 + 1, crew=CREW))
    assert public.status == "open"
    assert public.rejected[0].code == "other-crew"


def test_update_for_another_request_is_reported_not_applied() -> None:
    other = req(title="spare tent")
    stray = upd(B, 1, "claim", T0 + 1, target=other)
    view = state(stray)
    assert view.status == "open"
    assert [(r.item, r.code) for r in view.rejected] == [(stray, "other-request")]


def test_duplicate_updates_count_once() -> None:
    claim = upd(B, 1, "claim", T0 + 1)
    view = state(claim, claim, claim)
    assert len(view.history) == 1
    assert view.rejected == ()


# --- Order and concurrency -------------------------------------------------------------


def test_concurrent_claims_first_in_order_wins() -> None:
    first = upd(C, 7, "claim", T0 + 10)
    second = upd(B, 3, "claim", T0 + 20)
    for updates in ([first, second], [second, first]):
        view = request_state(REQ, updates)
        assert view.claimer == C
        assert [(r.item, r.code, r.other) for r in view.rejected] == [
            (second, "already-claimed", C)
        ]


def test_equal_times_go_to_the_lower_feed_id() -> None:
    view = state(upd(C, 1, "claim", T0 + 5), upd(B, 1, "claim", T0 + 5))
    assert view.claimer == B


def test_no_update_is_placed_before_the_request() -> None:
    # D's clock is a day behind: its claim counts as made at the request's own time,
    # which ties with B's and goes to the lower feed id (B), not to D.
    view = state(upd(D, 1, "claim", T0 - 24 * HOUR), upd(B, 1, "claim", T0))
    assert view.claimer == B
    assert view.rejected[0].effective_time == T0


def test_one_authors_updates_apply_in_feed_order_despite_clock() -> None:
    # B's clock jumped back between the claim and the unclaim.
    view = state(upd(B, 5, "claim", T0 + 100), upd(B, 6, "unclaim", T0 + 50))
    assert (view.status, view.claimer) == ("open", None)
    assert [s.effective_time for s in view.history] == [T0 + 100, T0 + 100]


def test_a_late_earlier_claim_displaces_a_later_one() -> None:
    later = upd(B, 1, "claim", T0 + 20)
    assert state(later).claimer == B
    earlier = upd(C, 1, "claim", T0 + 10)
    view = state(later, earlier)
    assert view.claimer == C
    assert view.rejected[0].item == later


def test_unclaim_then_someone_else_claims() -> None:
    view = state(
        upd(B, 1, "claim", T0 + 1), upd(B, 2, "unclaim", T0 + 2), upd(C, 1, "claim", T0 + 3)
    )
    assert view.claimer == C
    assert view.rejected == ()


MEMBERS = [A, B, C, D]


@st.composite
def update_sets(draw: st.DrawFn) -> list[UpdateItem]:
    """Updates by a few members with per-feed increasing seqs and arbitrary clocks."""
    updates: list[UpdateItem] = []
    for member in MEMBERS:
        steps = draw(
            st.lists(st.tuples(st.sampled_from(REQUEST_ACTIONS), st.integers(-50, 50)), max_size=6)
        )
        seq = draw(st.integers(2, 5))
        for action, offset in steps:
            seq += draw(st.integers(1, 3))
            updates.append(upd(member, seq, action, T0 + offset))
    return updates


@settings(max_examples=300, deadline=None)
@given(updates=update_sets(), data=st.data())
def test_view_is_independent_of_input_order(updates: list[UpdateItem], data: st.DataObject) -> None:
    expected = request_state(REQ, updates)
    shuffled = data.draw(st.permutations(updates))
    dupes = data.draw(st.lists(st.sampled_from(updates), max_size=3)) if updates else []
    assert request_state(REQ, [*shuffled, *dupes]) == expected


@settings(max_examples=300, deadline=None)
@given(updates=update_sets())
def test_view_invariants(updates: list[UpdateItem]) -> None:
    view = request_state(REQ, updates)
    # Every update is either applied or rejected, once.
    assert sorted([*(s.item.id for s in view.history), *(r.item.id for r in view.rejected)]) == (
        sorted(u.id for u in updates)
    )
    # The view is the end of its history.
    if view.history:
        last = view.history[-1]
        assert (last.status, last.claimer) == (view.status, view.claimer)
        assert view.updated_at == last.effective_time
    else:
        assert (view.status, view.claimer, view.updated_at) == ("open", None, T0)
    assert (view.status == "claimed") <= (view.claimer is not None)
    assert view.claimer is None or view.status in ("claimed", "fulfilled")
    # Applied and rejected updates are each listed in processing order, in which one
    # author's updates follow their feed order.
    for listed in ([s.item for s in view.history], [r.item for r in view.rejected]):
        for member in MEMBERS:
            seqs = [item.seq for item in listed if item.author == member]
            assert seqs == sorted(seqs)
    # The author never claims; a claimer's claim is in the history.
    assert all(not (s.item.author == A and s.item.update.action == "claim") for s in view.history)
    if view.status == "claimed":
        assert any(
            s.item.author == view.claimer and s.item.update.action == "claim" for s in view.history
        )


def test_allowed_actions_per_role() -> None:
    claimed = state(upd(B, 1, "claim", T0 + 1))
    assert allowed_actions(claimed, A) == ("unclaim", "fulfil", "withdraw")
    assert allowed_actions(claimed, B) == ("unclaim", "fulfil")
    assert allowed_actions(claimed, C) == ()
    opened = state()
    assert allowed_actions(opened, A) == ("fulfil", "withdraw")
    assert allowed_actions(opened, C) == ("claim",)


# --- The board --------------------------------------------------------------------------

NOW = T0 + 10 * HOUR


def view_of(
    title: str,
    *updates: UpdateItem,
    author: bytes = A,
    needed_by: int | None = None,
    time: int = T0,
) -> RequestView:
    item = req(author, time=time, needed_by=needed_by, title=title)
    retargeted = [
        upd(u.author, u.seq, u.update.action, u.update.time, target=item) for u in updates
    ]
    return request_state(item, retargeted)


def titles(views: list[RequestView]) -> list[str]:
    return [v.request.title for v in views]


@pytest.fixture
def views() -> list[RequestView]:
    return [
        view_of("undated old", time=T0 - HOUR),
        view_of("undated new", time=T0 + HOUR),
        view_of("due in 100h", needed_by=NOW + 100 * HOUR),
        view_of("due in 72h", needed_by=NOW + DUE_SOON_MS),
        view_of("due in 1h", needed_by=NOW + HOUR),
        view_of("overdue", needed_by=NOW - HOUR),
        view_of("claimed by B", upd(B, 1, "claim", T0 + 2), needed_by=NOW + 2 * HOUR),
        view_of("claimed by me", upd(D, 1, "claim", T0 + 3), needed_by=NOW + 5 * HOUR),
        view_of("fulfilled", upd(A, 1, "fulfil", T0 + 4), needed_by=NOW + HOUR),
        view_of("withdrawn", upd(A, 1, "withdraw", T0 + 5), needed_by=NOW + HOUR),
        view_of("my ask", author=D, needed_by=NOW + 50 * HOUR),
        view_of("my done", upd(D, 1, "fulfil", T0 + 6), author=D),
    ]


def test_board_open_sorted_by_due_then_newest(views: list[RequestView]) -> None:
    assert titles(board(views, D, NOW, "open")) == [
        "overdue",
        "due in 1h",
        "my ask",
        "due in 72h",
        "due in 100h",
        "undated new",
        "undated old",
    ]


def test_board_claimed(views: list[RequestView]) -> None:
    assert titles(board(views, D, NOW, "claimed")) == ["claimed by B", "claimed by me"]


def test_board_due_soon(views: list[RequestView]) -> None:
    assert titles(board(views, D, NOW, "due-soon")) == [
        "overdue",
        "due in 1h",
        "claimed by B",
        "claimed by me",
        "my ask",
        "due in 72h",
    ]


def test_board_mine_active_first_then_recently_closed(views: list[RequestView]) -> None:
    extra = view_of("helped", upd(D, 1, "claim", T0 + 1), upd(D, 2, "fulfil", T0 + 9))
    assert titles(board([*views, extra], D, NOW, "mine")) == [
        "claimed by me",
        "my ask",
        "helped",
        "my done",
    ]


def test_board_all(views: list[RequestView]) -> None:
    assert titles(board(views, D, NOW, "all")) == [
        "overdue",
        "due in 1h",
        "claimed by B",
        "claimed by me",
        "my ask",
        "due in 72h",
        "due in 100h",
        "undated new",
        "undated old",
        "my done",
        "withdrawn",
        "fulfilled",
    ]


def test_board_is_independent_of_input_order(views: list[RequestView]) -> None:
    filters: tuple[BoardFilter, ...] = ("open", "mine", "claimed", "due-soon", "all")
    for f in filters:
        assert board(list(reversed(views)), D, NOW, f) == board(views, D, NOW, f)


def test_board_unknown_filter() -> None:
    with pytest.raises(ValueError, match="unknown board filter"):
        board([], D, NOW, cast(Any, "soon"))

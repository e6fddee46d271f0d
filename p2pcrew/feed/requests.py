"""A request's lifecycle and the requests board, computed from entries (pure, no I/O).

Requests and their updates arrive from many feeds in any order, and no two peers see
them in the same order. Every peer must still show the same status and the same
claimer once it holds the same entries. So the state is never stored or updated in
place: ``request_state`` recomputes it from the request and the *set* of updates it
has, by the rules below, and the result does not depend on the order of its input.
The caller (the store layer) fills the plain ``RequestItem``/``UpdateItem`` records;
nothing here reads the store, so the rules can be tested, and reasoned about, alone.

Rules (the wording that docs/crews.md copies)
---------------------------------------------

**States.** A request is *open*, *claimed* (by one member, the claimer), *fulfilled*
or *withdrawn*. Reopening is a step, not a state: it returns the request to *open*
(``RequestView.reopened`` says the current open period began with a reopen).

**Who may do what.** ``A`` is the request's author, ``C`` its current claimer.

=========  ==========================  =====================================
action     applies when the request is who may take it
=========  ==========================  =====================================
claim      open                        any member except A
unclaim    claimed                     C or A (A can release a stalled claim)
fulfil     open or claimed             A; or C while it is claimed
withdraw   open or claimed             A
reopen     fulfilled or withdrawn      A
=========  ==========================  =====================================

After claim the request is claimed by the update's author; after unclaim, withdraw
or reopen it is open or withdrawn with no claimer; after fulfil it is fulfilled and
keeps the claimer it had (who helped), or none if A fulfilled it while open.

The claimer may mark a request fulfilled without asking the author: the content
format has no "author allows it" switch, and a request can always be reopened by its
author if the claimer was wrong. That keeps one rule for every request.
The author may not claim their own request: the claimer is the person helping, and
an author who solved it themselves marks it fulfilled directly.

**Invalid updates are ignored, never errors.** An update is checked against the state
at its place in the order (below). If it does not apply in that state it is rejected
with code ``wrong-state`` (or ``already-claimed`` for a claim on a claimed request);
if it applies but its author may not take it, ``own-request``, ``not-claimer`` or
``not-author``. The state is checked before the role. An update whose ``crew`` differs
from the request's is rejected as ``other-crew`` (so one crew cannot act on another's
request) and one naming another request as ``other-request``. Rejected updates change
nothing and are listed in ``RequestView.rejected`` with a readable reason, so that
someone whose claim lost a race is told so instead of seeing it vanish.
Membership is the caller's business: pass only updates from members of the crew.
The same update (same entry id) given twice counts once.

**Order.** Updates by different people carry no link to each other, so there is no
true order between them; what convergence needs is one order every peer computes
alike. Each update gets an *effective time*::

    effective(u) = max(u.time, request.time, effective(previous update by u's author))

where "previous" means the same author's update to this request with the next lower
``(seq, id)``. Updates are then applied in ascending
``(effective time, author feed id bytes, seq, entry id)``. Consequences:

* one author's updates are always applied in their feed order (``seq``), whatever
  their clock said, because an author's effective time never decreases along the feed;
* no update is placed before the request it acts on, even with a clock that is behind;
* between people, the earlier claimed time goes first, and equal times go to the
  lower feed id: of two concurrent claims, the first in this order wins and the other
  is rejected as ``already-claimed``, on every peer.

Claimed time is chosen by the update's author, so a member can backdate a claim to win
a race (no further back than the request itself). Nothing in the entry format can
prove a time, and any rule based on arrival order would differ between peers. The
remedy is social and already in the rules: the author sees who claimed and may
unclaim anyone. A view can also change when an older update arrives late (an earlier
claim displaces a later one); that is convergence working, and the displaced claim
shows up in ``rejected``.

**Board.** ``board`` filters views: ``open``; ``claimed`` (by anyone); ``mine`` (I wrote
it or I am its claimer, any state); ``due-soon`` (open or claimed, with a needed-by
time at most 72 hours from now, overdue ones included because they still need
someone to act, if only the author to withdraw them); ``all``. Open, claimed and
due-soon lists are ordered by needed-by time, soonest first, undated last, then newest
request first. ``mine`` and ``all`` put open and claimed requests first in that order,
then fulfilled and withdrawn ones by last change, newest first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from p2pcrew.feed.content import REQUEST_ACTIONS, Request, RequestAction, RequestUpdate
from p2pcrew.feed.ids import feed_id_to_text, short

__all__ = [
    "DUE_SOON_MS",
    "BoardFilter",
    "HistoryStep",
    "RejectCode",
    "RejectedUpdate",
    "RequestItem",
    "RequestStatus",
    "RequestView",
    "UpdateItem",
    "allowed_actions",
    "board",
    "is_due_soon",
    "request_state",
]

RequestStatus: TypeAlias = Literal["open", "claimed", "fulfilled", "withdrawn"]
BoardFilter: TypeAlias = Literal["open", "mine", "claimed", "due-soon", "all"]
RejectCode: TypeAlias = Literal[
    "other-request",
    "other-crew",
    "wrong-state",
    "already-claimed",
    "own-request",
    "not-claimer",
    "not-author",
]

DUE_SOON_MS: Final = 72 * 60 * 60 * 1000
"""How far ahead ``due-soon`` looks: a weekend's planning horizon."""

_ACTIVE: Final[frozenset[RequestStatus]] = frozenset({"open", "claimed"})
_APPLIES_WHEN: Final[dict[RequestAction, frozenset[RequestStatus]]] = {
    "claim": frozenset({"open"}),
    "unclaim": frozenset({"claimed"}),
    "fulfil": _ACTIVE,
    "withdraw": _ACTIVE,
    "reopen": frozenset({"fulfilled", "withdrawn"}),
}


# --- Input records (filled by the caller from the store) --------------------------------


@dataclass(frozen=True, slots=True)
class RequestItem:
    """A request entry: its entry id, author feed id, sequence number and content."""

    id: bytes
    author: bytes
    seq: int
    request: Request


@dataclass(frozen=True, slots=True)
class UpdateItem:
    """A request-update entry. ``seq`` is its position in the author's feed, which is
    the causal order between one author's updates."""

    id: bytes
    author: bytes
    seq: int
    update: RequestUpdate


# --- Output records ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """An applied update and the state right after it, for a request's timeline."""

    item: UpdateItem
    effective_time: int
    """Where the update sits in the order (see the module docstring); for display,
    prefer it to the raw claimed time, which may run backwards within one feed."""
    status: RequestStatus
    claimer: bytes | None


@dataclass(frozen=True, slots=True)
class RejectedUpdate:
    """An update that changed nothing, and why: shown so that nobody's action vanishes."""

    item: UpdateItem
    effective_time: int
    code: RejectCode
    reason: str
    """Readable English; names people by short feed id. A UI with display names can
    build its own text from ``code`` and ``other``."""
    other: bytes | None = None
    """The feed id the reason refers to (the current claimer), when there is one."""


@dataclass(frozen=True, slots=True)
class RequestView:
    """The state of one request as every peer holding the same entries computes it."""

    item: RequestItem
    status: RequestStatus
    claimer: bytes | None
    reopened: bool
    """True when the request is open because its author reopened it."""
    updated_at: int
    """Effective time of the last applied update, or the request's own time."""
    history: tuple[HistoryStep, ...]
    rejected: tuple[RejectedUpdate, ...]

    @property
    def id(self) -> bytes:
        return self.item.id

    @property
    def author(self) -> bytes:
        return self.item.author

    @property
    def request(self) -> Request:
        return self.item.request

    @property
    def active(self) -> bool:
        """Open or claimed: someone may still need to act."""
        return self.status in _ACTIVE


# --- The lifecycle ----------------------------------------------------------------------


def _who(feed: bytes) -> str:
    """A short readable feed id for reasons; tolerant of malformed ids in test data."""
    try:
        return short(feed_id_to_text(feed))
    except ValueError:
        return feed.hex()[:16]


def _check(
    action: RequestAction,
    actor: bytes,
    author: bytes,
    status: RequestStatus,
    claimer: bytes | None,
) -> tuple[RejectCode, str, bytes | None] | None:
    """Why ``actor`` may not take ``action`` now, or None if they may.

    The one copy of the permission table: ``request_state`` applies updates with it and
    ``allowed_actions`` asks it what a UI should offer, so they cannot disagree.
    """
    if status not in _APPLIES_WHEN[action]:
        if action == "claim" and status == "claimed" and claimer is not None:
            who = "you" if claimer == actor else _who(claimer)
            return "already-claimed", f"already claimed by {who}", claimer
        return "wrong-state", f"cannot {action}: the request is {status}", None
    if action == "claim":
        if actor == author:
            return "own-request", "the author cannot claim their own request", None
    elif action == "unclaim":
        if actor not in (claimer, author):
            assert claimer is not None  # status is "claimed"
            return (
                "not-claimer",
                f"only the claimer ({_who(claimer)}) or the author may unclaim",
                claimer,
            )
    elif action == "fulfil":
        if actor != author and not (status == "claimed" and actor == claimer):
            return "not-author", "only the author or the claimer may mark it fulfilled", None
    elif actor != author:  # withdraw, reopen
        return "not-author", f"only the author may {action}", None
    return None


def _ordered(request: RequestItem, updates: Iterable[UpdateItem]) -> list[tuple[int, UpdateItem]]:
    """Deduplicate and sort updates into the one order every peer uses, with their
    effective times (rules in the module docstring)."""
    by_author: dict[bytes, dict[bytes, UpdateItem]] = defaultdict(dict)
    for u in updates:
        by_author[u.author][u.id] = u
    floor = request.request.time
    timed: list[tuple[int, UpdateItem]] = []
    for items in by_author.values():
        running = floor
        for u in sorted(items.values(), key=lambda u: (u.seq, u.id)):
            running = max(running, u.update.time)
            timed.append((running, u))
    timed.sort(key=lambda t: (t[0], t[1].author, t[1].seq, t[1].id))
    return timed


def request_state(request: RequestItem, updates: Sequence[UpdateItem]) -> RequestView:
    """Compute a request's status, claimer, history and rejected updates.

    Pure and independent of the order of ``updates``: peers with the same entries get
    equal views. Updates for other requests may be passed; they are reported as
    ``other-request`` and otherwise ignored (the caller normally filters them).
    """
    author = request.author
    crew = request.request.crew
    mine = [u for u in updates if u.update.request == request.id]
    foreign = {u.id: u for u in updates if u.update.request != request.id}

    status: RequestStatus = "open"
    claimer: bytes | None = None
    reopened = False
    updated_at = request.request.time
    history: list[HistoryStep] = []
    rejected: list[RejectedUpdate] = []

    for eff, u in _ordered(request, mine):
        action = u.update.action
        if u.update.crew != crew:
            rejected.append(
                RejectedUpdate(u, eff, "other-crew", "not posted in this request's crew")
            )
            continue
        problem = _check(action, u.author, author, status, claimer)
        if problem is not None:
            code, reason, other = problem
            rejected.append(RejectedUpdate(u, eff, code, reason, other))
            continue
        if action == "claim":
            status, claimer = "claimed", u.author
        elif action == "unclaim":
            status, claimer = "open", None
        elif action == "fulfil":
            status = "fulfilled"
        elif action == "withdraw":
            status, claimer = "withdrawn", None
        else:  # reopen
            status, claimer = "open", None
        reopened = action == "reopen" or (reopened and status == "open")
        updated_at = eff
        history.append(HistoryStep(u, eff, status, claimer))

    for u in sorted(foreign.values(), key=lambda u: (u.author, u.seq, u.id)):
        rejected.append(
            RejectedUpdate(u, u.update.time, "other-request", "refers to another request")
        )
    return RequestView(
        item=request,
        status=status,
        claimer=claimer,
        reopened=reopened,
        updated_at=updated_at,
        history=tuple(history),
        rejected=tuple(rejected),
    )


def allowed_actions(view: RequestView, me: bytes) -> tuple[RequestAction, ...]:
    """The actions ``me`` may take on the request now, in ``REQUEST_ACTIONS`` order.

    A UI offers exactly these, so a button never publishes an update that every peer
    would then reject. (A concurrent update by someone else can still win the race.)
    """
    return tuple(
        action
        for action in REQUEST_ACTIONS
        if _check(action, me, view.author, view.status, view.claimer) is None
    )


# --- The board --------------------------------------------------------------------------


def is_due_soon(view: RequestView, now_ms: int) -> bool:
    """Open or claimed with a needed-by at most ``DUE_SOON_MS`` ahead (or overdue)."""
    needed_by = view.request.needed_by
    return view.active and needed_by is not None and needed_by <= now_ms + DUE_SOON_MS


def _by_due(view: RequestView) -> tuple[bool, int, int, bytes]:
    """Soonest needed-by first, undated last; then newest request; then id (stable)."""
    needed_by = view.request.needed_by
    return (needed_by is None, needed_by or 0, -view.request.time, view.id)


def _active_then_recent(view: RequestView) -> tuple[bool, bool, int, int, int, bytes]:
    """Active requests by ``_by_due``; then closed ones by last change, newest first."""
    if view.active:
        undated, due, newest, ident = _by_due(view)
        return (False, undated, due, newest, 0, ident)
    return (True, False, 0, 0, -view.updated_at, view.id)


def board(
    requests: Iterable[RequestView],
    me: bytes,
    now_ms: int,
    filter: BoardFilter,  # the name the UI and CLI use for it
) -> list[RequestView]:
    """The requests board: ``requests`` filtered and sorted as the module docstring says.

    ``now_ms`` is a parameter rather than read from the clock so that the board is a
    pure function of its input (and testable at any moment).
    """
    views = list(requests)
    if filter == "open":
        return sorted((v for v in views if v.status == "open"), key=_by_due)
    if filter == "claimed":
        return sorted((v for v in views if v.status == "claimed"), key=_by_due)
    if filter == "due-soon":
        return sorted((v for v in views if is_due_soon(v, now_ms)), key=_by_due)
    if filter == "mine":
        views = [v for v in views if me in (v.author, v.claimer)]
    elif filter != "all":
        raise ValueError(f"unknown board filter {filter!r}")
    return sorted(views, key=_active_then_recent)

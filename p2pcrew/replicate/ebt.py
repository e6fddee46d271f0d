"""The replication engine: a reducer in the spirit of epidemic broadcast trees.

Theory of operation
-------------------
``step(state, event) -> actions`` holds every replication decision and does no I/O:
the asyncio adapter turns network and store happenings into events and carries out
the actions it gets back (send a message, stream a range of entries, persist a clock,
drop a peer). For speed the state is mutated in place; nothing else mutates it.

Each side keeps, per peer, the notes it last heard from that peer (``received``) and
the notes it last told that peer (``sent``). Both are persisted. On connect each side
sends HELLO with the digest of its ``received``; the other compares it with the digest
of its ``sent``: equal means both remember the same, so only notes that changed since
are sent (an in-sync reconnect sends an empty list); different means someone lost
state, so all notes are sent. Entries flowing over the connection update both views
the same way on both ends (the sender records that the receiver now has them), which
keeps the digests equal across reconnects.

A note says "I have feed F up to seq s" plus a *receive* bit: "push new entries of F
to me". We set the receive bit towards one peer per feed (the *pusher*), so a feed is
streamed to us once, not by every neighbour. If the pusher is behind or stalls while
another peer has more, we move the bit. Blocked and out-of-scope feeds are announced
as -1 and never served.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from p2pcrew.replicate.messages import (
    NOT_REPLICATING,
    Hello,
    Message,
    Notes,
    note,
    note_receive,
    note_seq,
    notes_digest,
)

STALL_SECONDS = 10.0
"""A pusher that has more than us but sent nothing for this long is replaced."""
MAX_UNWANTED_ENTRIES = 64
"""Entries of feeds we never asked for, tolerated per connection before dropping it."""

# ---- events (past tense) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerConnected:
    peer: bytes
    now: float
    received: dict[bytes, int]
    sent: dict[bytes, int]
    initiator: bool = True
    """We dialled. The accepting side answers NOTES only for feeds the dialler named,
    so a pub with thousands of members does not tell each of them about every feed."""


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer: bytes


@dataclass(frozen=True, slots=True)
class MessageReceived:
    peer: bytes
    message: Message
    now: float


@dataclass(frozen=True, slots=True)
class EntriesStored:
    """The adapter ingested entries from ``peer`` (or from elsewhere, if peer is None)."""

    peer: bytes | None
    stored: list[tuple[bytes, int]]
    now: float


@dataclass(frozen=True, slots=True)
class EntriesRejected:
    peer: bytes
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class UnwantedEntriesReceived:
    peer: bytes
    count: int


@dataclass(frozen=True, slots=True)
class ScopeChanged:
    wanted: frozenset[bytes]
    blocked: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Ticked:
    now: float


Event = (
    PeerConnected
    | PeerDisconnected
    | MessageReceived
    | EntriesStored
    | EntriesRejected
    | UnwantedEntriesReceived
    | ScopeChanged
    | Ticked
)

# ---- actions (imperative) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendMessage:
    peer: bytes
    message: Message


@dataclass(frozen=True, slots=True)
class SendEntries:
    """Stream entries ``start..end`` of ``feed`` to ``peer``, in order."""

    peer: bytes
    feed: bytes
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PersistClock:
    peer: bytes
    received: dict[bytes, int]
    sent: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class DropPeer:
    peer: bytes
    reason: str
    message: str


Action = SendMessage | SendEntries | PersistClock | DropPeer

# ---- state ---------------------------------------------------------------------


@dataclass(slots=True)
class PeerState:
    received: dict[bytes, int]
    sent: dict[bytes, int]
    hello_received: bool = False
    notes_received: bool = False
    initiator: bool = True
    notes_sent: bool = False
    pushing: set[bytes] = field(default_factory=set)
    """Feeds the peer asked us to push."""
    sent_upto: dict[bytes, int] = field(default_factory=dict)
    last_progress: dict[bytes, float] = field(default_factory=dict)
    unwanted: int = 0

    def their_seq(self, feed: bytes) -> int:
        return note_seq(self.received.get(feed, NOT_REPLICATING))

    def ready(self) -> bool:
        """Our notes may flow: HELLO done, and (accepting side) our first NOTES sent."""
        return self.hello_received and (self.initiator or self.notes_sent)

    def concerns(self, feed: bytes) -> bool:
        """The accepting side only talks about feeds the dialler named (or we did)."""
        return self.initiator or feed in self.received or feed in self.sent


@dataclass(slots=True)
class EngineState:
    local: dict[bytes, int]
    """Our vector clock: feed to latest stored seq."""
    wanted: frozenset[bytes]
    blocked: frozenset[bytes] = frozenset()
    peers: dict[bytes, PeerState] = field(default_factory=dict)
    pusher: dict[bytes, bytes] = field(default_factory=dict)

    def replicates(self, feed: bytes) -> bool:
        return feed in self.wanted and feed not in self.blocked


def step(state: EngineState, event: Event) -> list[Action]:
    """Apply one event; return what the adapter must do, in order."""
    match event:
        case PeerConnected():
            return _connected(state, event)
        case PeerDisconnected(peer):
            return _disconnected(state, peer)
        case MessageReceived(peer, message, now):
            if peer not in state.peers:
                return []
            if isinstance(message, Hello):
                return _hello(state, peer, message.digest)
            if isinstance(message, Notes):
                return _notes(state, peer, message.notes, now)
            return []  # entries reach the engine as EntriesStored after ingest
        case EntriesStored(peer, stored, now):
            return _stored(state, peer, stored, now)
        case EntriesRejected(peer, reason, message):
            return [DropPeer(peer, reason, message)] if peer in state.peers else []
        case UnwantedEntriesReceived(peer, count):
            return _unwanted(state, peer, count)
        case ScopeChanged(wanted, blocked):
            return _scope(state, wanted, blocked)
        case Ticked(now):
            return _tick(state, now)


# ---- handlers ------------------------------------------------------------------


def _connected(state: EngineState, event: PeerConnected) -> list[Action]:
    peer = PeerState(
        received=dict(event.received), sent=dict(event.sent), initiator=event.initiator
    )
    state.peers[event.peer] = peer
    return [SendMessage(event.peer, Hello(notes_digest(peer.received)))]


def _disconnected(state: EngineState, peer_id: bytes) -> list[Action]:
    peer = state.peers.pop(peer_id, None)
    if peer is None:
        return []
    actions: list[Action] = [PersistClock(peer_id, peer.received, peer.sent)]
    for feed in [f for f, p in state.pusher.items() if p == peer_id]:
        del state.pusher[feed]
        actions += _choose_pusher(state, feed)
    return actions


def _hello(state: EngineState, peer_id: bytes, digest: bytes) -> list[Action]:
    peer = state.peers[peer_id]
    if peer.hello_received:
        return [DropPeer(peer_id, "duplicate-hello", "peer sent HELLO twice")]
    peer.hello_received = True
    if digest != notes_digest(peer.sent):
        peer.sent = {}  # the peer does not remember what we told it: tell it everything
    if not peer.initiator:
        return []  # the accepting side answers the dialler's NOTES instead
    changes = _note_changes(state, peer_id, state.local.keys() | state.wanted | peer.sent.keys())
    peer.sent.update(changes)
    peer.notes_sent = True
    return [SendMessage(peer_id, Notes(changes))]


def _notes(state: EngineState, peer_id: bytes, notes: dict[bytes, int], now: float) -> list[Action]:
    peer = state.peers[peer_id]
    if not peer.hello_received:
        return [DropPeer(peer_id, "notes-before-hello", "peer sent notes before HELLO")]
    first = not peer.notes_received
    peer.notes_received = True
    peer.received.update(notes)
    # The first NOTES of a connection may be an empty delta on top of what we
    # remember: act on the whole remembered view, since serving is per connection.
    todo = peer.received if first else notes
    actions: list[Action] = []
    if not peer.notes_sent:  # accepting side: answer about the feeds the dialler named
        changes = _note_changes(state, peer_id, peer.received.keys() | peer.sent.keys())
        peer.sent.update(changes)
        peer.notes_sent = True
        actions.append(SendMessage(peer_id, Notes(changes)))
    for feed, value in todo.items():
        actions += _serve(state, peer_id, peer, feed, value)
        if state.replicates(feed) and value != NOT_REPLICATING:
            actions += _maybe_move_pusher(state, feed, peer_id, now)
    actions.append(PersistClock(peer_id, dict(peer.received), dict(peer.sent)))
    return actions


def _maybe_move_pusher(state: EngineState, feed: bytes, peer_id: bytes, now: float) -> list[Action]:
    """Make ``peer_id`` the pusher if it has what we lack and the current one does not.

    Only a peer that is ahead of us can become the pusher: two peers that both lack a
    feed must never wait on each other.
    """
    ours = state.local.get(feed, 0)
    peer = state.peers[peer_id]
    if peer.their_seq(feed) <= ours:
        return []
    peer.last_progress.setdefault(feed, now)
    current = state.pusher.get(feed)
    if (
        current is not None
        and current in state.peers
        and state.peers[current].their_seq(feed) > ours
    ):
        return []
    return _assign_pusher(state, feed, peer_id)


def _serve(
    state: EngineState, peer_id: bytes, peer: PeerState, feed: bytes, value: int
) -> list[Action]:
    """Start or stop pushing ``feed`` to a peer, as its note asks."""
    if not note_receive(value) or feed in state.blocked:
        peer.pushing.discard(feed)
        return []
    peer.pushing.add(feed)
    theirs = note_seq(value)
    ours = state.local.get(feed, 0)
    peer.sent_upto[feed] = max(theirs, peer.sent_upto.get(feed, 0))
    if ours <= peer.sent_upto[feed]:
        return []
    start = peer.sent_upto[feed] + 1
    peer.sent_upto[feed] = ours
    _record_sent(peer, feed, ours)
    return [SendEntries(peer_id, feed, start, ours)]


def _stored(
    state: EngineState, source: bytes | None, stored: list[tuple[bytes, int]], now: float
) -> list[Action]:
    actions: list[Action] = []
    latest: dict[bytes, int] = {}
    for feed, seq in stored:
        latest[feed] = max(seq, latest.get(feed, 0))
    for feed, seq in latest.items():
        previous = state.local.get(feed, 0)
        if seq <= previous:
            continue
        state.local[feed] = seq
        if source is not None and source in state.peers:
            peer = state.peers[source]
            peer.last_progress[feed] = now
            if state.pusher.get(feed) not in state.peers:
                actions += _assign_pusher(state, feed, source)  # first to deliver wins
            # The peer knows we now hold what it sent; mirror its bookkeeping.
            peer.sent[feed] = note(seq, note_receive(peer.sent.get(feed, 0)))
            if note_seq(peer.received.get(feed, NOT_REPLICATING)) < seq:
                peer.received[feed] = note(seq, note_receive(peer.received.get(feed, 0)))
        actions += _forward(state, feed, source)
    return actions


def _forward(state: EngineState, feed: bytes, source: bytes | None) -> list[Action]:
    """Live push: send new entries of ``feed`` to every peer that asked for them."""
    ours = state.local[feed]
    actions: list[Action] = []
    for peer_id, peer in state.peers.items():
        if peer_id == source or feed not in peer.pushing:
            continue
        done = peer.sent_upto.get(feed, 0)
        if ours > done:
            peer.sent_upto[feed] = ours
            _record_sent(peer, feed, ours)
            actions.append(SendEntries(peer_id, feed, done + 1, ours))
    return actions


def _record_sent(peer: PeerState, feed: bytes, seq: int) -> None:
    """The receiver will record that we hold ``seq``; keep our copy of its view equal."""
    old = peer.received.get(feed, NOT_REPLICATING)
    if note_seq(old) < seq:
        peer.received[feed] = note(seq, note_receive(old))


def _unwanted(state: EngineState, peer_id: bytes, count: int) -> list[Action]:
    peer = state.peers.get(peer_id)
    if peer is None:
        return []
    peer.unwanted += count
    if peer.unwanted > MAX_UNWANTED_ENTRIES:
        return [DropPeer(peer_id, "unwanted-entries", "peer sends feeds we did not ask for")]
    return []


def _scope(state: EngineState, wanted: frozenset[bytes], blocked: frozenset[bytes]) -> list[Action]:
    changed = (state.wanted ^ wanted) | (state.blocked ^ blocked)
    state.wanted, state.blocked = wanted, blocked
    actions: list[Action] = []
    for feed in changed:
        if not state.replicates(feed):
            state.pusher.pop(feed, None)
        for peer in state.peers.values():
            if feed in blocked:
                peer.pushing.discard(feed)
    for peer_id, peer in state.peers.items():
        if peer.ready():
            changes = _note_changes(state, peer_id, [f for f in changed if peer.concerns(f)])
            peer.sent.update(changes)
            if changes:
                actions.append(SendMessage(peer_id, Notes(changes)))
    for feed in changed:
        if state.replicates(feed):
            actions += _choose_pusher(state, feed)
    return actions


def _tick(state: EngineState, now: float) -> list[Action]:
    """Advertise what lazy peers do not know we have; replace stalled pushers."""
    actions = _advertise(state)
    for feed, peer_id in list(state.pusher.items()):
        peer = state.peers.get(peer_id)
        ours = state.local.get(feed, 0)
        if peer is None or peer.their_seq(feed) <= ours:
            continue
        if now - peer.last_progress.get(feed, now) <= STALL_SECONDS:
            continue
        others = [p for p, s in state.peers.items() if p != peer_id and s.their_seq(feed) > ours]
        if others:
            actions += _assign_pusher(state, feed, others[0])
            state.peers[others[0]].last_progress[feed] = now
    return actions


def _advertise(state: EngineState) -> list[Action]:
    """Tell peers we do not push to that we got ahead of them, once per change.

    Entries flow live only along pushers; these periodic notes let a peer whose
    pusher lacks a feed (or stalled) find a better one.
    """
    actions: list[Action] = []
    for peer_id, peer in state.peers.items():
        if not peer.notes_received:
            continue
        changes: dict[bytes, int] = {}
        for feed, theirs in peer.received.items():
            ours = state.local.get(feed, 0)
            if (
                theirs != NOT_REPLICATING
                and feed not in peer.pushing
                and state.replicates(feed)
                and note_seq(theirs) < ours
                and note_seq(peer.sent.get(feed, NOT_REPLICATING)) < ours
            ):
                changes[feed] = _current_note(state, peer_id, feed)
        if changes:
            peer.sent.update(changes)
            actions.append(SendMessage(peer_id, Notes(changes)))
    return actions


# ---- notes and pushers -------------------------------------------------------


def _current_note(state: EngineState, peer_id: bytes, feed: bytes) -> int:
    if not state.replicates(feed):
        return NOT_REPLICATING
    pusher = state.pusher.get(feed)
    receive = pusher is None or pusher == peer_id or pusher not in state.peers
    return note(state.local.get(feed, 0), receive)


def _note_changes(state: EngineState, peer_id: bytes, feeds: Iterable[bytes]) -> dict[bytes, int]:
    sent = state.peers[peer_id].sent
    changes: dict[bytes, int] = {}
    for feed in feeds:
        value = _current_note(state, peer_id, feed)
        if value == NOT_REPLICATING and feed not in sent:
            continue
        if sent.get(feed) != value:
            changes[feed] = value
    return changes


def _assign_pusher(state: EngineState, feed: bytes, peer_id: bytes | None) -> list[Action]:
    """Ask ``peer_id`` (or, if None, everyone) to push ``feed``; tell the others to stop."""
    if peer_id is None:
        state.pusher.pop(feed, None)
    else:
        state.pusher[feed] = peer_id
    actions: list[Action] = []
    for other_id, other in state.peers.items():
        if not other.ready() or not other.concerns(feed):
            continue
        value = _current_note(state, other_id, feed)
        if other.sent.get(feed) != value:
            other.sent[feed] = value
            actions.append(SendMessage(other_id, Notes({feed: value})))
    return actions


def _choose_pusher(state: EngineState, feed: bytes) -> list[Action]:
    """The peer known to have the most of ``feed``; if none has more, ask everyone."""
    ours = state.local.get(feed, 0)
    best = max(
        (p for p, s in state.peers.items() if s.their_seq(feed) > ours),
        key=lambda p: state.peers[p].their_seq(feed),
        default=None,
    )
    return _assign_pusher(state, feed, best)


# ---- questions the adapter asks ------------------------------------------------


def accepts(state: EngineState, feed: bytes) -> bool:
    """Whether entries of ``feed`` may be ingested at all."""
    return state.replicates(feed)


def caught_up(state: EngineState, feed: bytes) -> bool:
    """We hold at least as much of ``feed`` as every connected peer announced, and
    at least one peer announced having some of it (so we actually learnt something)."""
    announced = [
        p.their_seq(feed)
        for p in state.peers.values()
        if p.notes_received and p.received.get(feed, NOT_REPLICATING) != NOT_REPLICATING
    ]
    return bool(announced) and max(announced) > 0 and state.local.get(feed, 0) >= max(announced)


def in_sync(state: EngineState, peer_id: bytes) -> bool:
    """We hold everything the peer announced for the feeds we replicate."""
    peer = state.peers.get(peer_id)
    if peer is None or not peer.notes_received:
        return False
    return all(
        peer.their_seq(feed) <= state.local.get(feed, 0)
        for feed in peer.received
        if state.replicates(feed)
    )

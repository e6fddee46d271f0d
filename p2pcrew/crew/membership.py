"""Crew membership: a pure reducer from crew_state entries to the crew's current state.

Every peer that can open a crew's crew_state entries runs ``apply_states`` over the
same set and gets the same answer, whatever order the entries arrived in: the rules
(``docs/crews.md`` section 3, normative) depend only on the set. No I/O, no clock, no
store: the caller passes the opened states in and publishes what ``propose`` returns.

In short: epoch 0 is the founder's ``create``; each later state names the state it
follows (``prev``), must be authored by a member of that state, and starts a new epoch
with a fresh key. Where several states follow the same one, a removal beats a change by
the member it removes, and otherwise the smallest entry id wins. A change that lost is
not dropped: ``lost_changes`` tells its author's node what to re-apply on the winner.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from p2pcrew.crew.envelope import OpenedEnvelope, new_key, seal_for_members
from p2pcrew.crew.errors import MembershipRuleViolated, NotAMember
from p2pcrew.crew.state import (
    MAX_MEMBERS,
    CrewOp,
    CrewStateContent,
    crew_id_for,
    decode_crew_state,
    encode_crew_state,
)
from p2pcrew.feed.identity import feed_key_to_curve25519

__all__ = [
    "Change",
    "CrewState",
    "StateEntry",
    "apply_states",
    "create_crew",
    "lost_changes",
    "member_at",
    "propose",
    "reorg_depth",
    "seal_state",
    "state_entry",
]


@dataclass(frozen=True, slots=True)
class StateEntry:
    """An opened crew_state entry: where it is in its author's feed and what it says."""

    entry_id: bytes
    author: bytes
    seq: int
    content: CrewStateContent
    key: bytes
    """The key that opened its envelope; must be the state's own epoch key."""

    def __repr__(self) -> str:
        return f"StateEntry({self.entry_id.hex()[:12]}…, seq={self.seq}, {self.content!r})"


@dataclass(frozen=True, slots=True)
class CrewState:
    """A crew as the winning chain of crew_states defines it."""

    crew: bytes
    name: str
    description: str | None
    epoch: int
    members: frozenset[bytes]
    keys: Mapping[int, bytes] = field(repr=False)
    """Every epoch key of the winning chain, epoch 0 to ``epoch``."""
    head: bytes
    """Entry id of the winning crew_state of the current epoch."""
    history: tuple[StateEntry, ...] = field(repr=False)
    """The winning chain; ``history[e]`` is the state of epoch ``e``."""
    known: Mapping[bytes, StateEntry] = field(repr=False, compare=False)
    """Every self-consistent state given, winning or not, by entry id."""

    @property
    def key(self) -> bytes:
        """The current epoch key: seal new crew content with it."""
        return self.keys[self.epoch]

    def __repr__(self) -> str:  # no crew id, member ids or keys in logs
        return (
            f"CrewState(name={self.name!r}, epoch={self.epoch}, "
            f"members={len(self.members)}, head={self.head.hex()[:12]}…)"
        )


@dataclass(frozen=True, slots=True)
class Change:
    """One change to propose on top of a crew state.

    ``subjects`` are the feed ids added or removed. A ``rename`` carries the complete
    new name and description (None: no description).
    """

    op: CrewOp
    subjects: frozenset[bytes] = frozenset()
    name: str | None = None
    description: str | None = None


def state_entry(entry_id: bytes, author: bytes, seq: int, opened: OpenedEnvelope) -> StateEntry:
    """A StateEntry from an opened envelope. Raises InvalidCrewState if not a crew_state."""
    return StateEntry(entry_id, author, seq, decode_crew_state(opened.content), opened.key_used)


# --- the reducer ---------------------------------------------------------------------------


def apply_states(candidates: Iterable[StateEntry]) -> CrewState | None:
    """The crew state the winning chain of ``candidates`` defines (None: no valid create).

    ``candidates`` are all opened crew_state entries of one crew, in any order, with
    repeats allowed. Invalid ones, and ones whose ``prev`` is not (yet) known, are
    ignored; the result depends only on the set.

    Raises:
        ValueError: the candidates belong to more than one crew (a caller bug).
    """
    known: dict[bytes, StateEntry] = {}
    for entry in candidates:
        if entry.key == entry.content.key:
            known[entry.entry_id] = entry
    if len({entry.content.crew for entry in known.values()}) > 1:
        raise ValueError("apply_states: candidates of more than one crew")
    geneses = [entry for entry in known.values() if _valid_genesis(entry)]
    if not geneses:
        return None
    children: dict[bytes, list[StateEntry]] = {}
    for entry in known.values():
        if entry.content.prev is not None:
            children.setdefault(entry.content.prev, []).append(entry)
    # The founder's first create in feed order: later ones cannot rewrite the crew.
    current = min(geneses, key=lambda entry: (entry.seq, entry.entry_id))
    chain = [current]
    used_keys = {current.content.key}
    while True:
        valid = [
            child
            for child in children.get(current.entry_id, ())
            if _valid_successor(current, child, used_keys)
        ]
        if not valid:
            break
        current = _winner(current, valid)
        chain.append(current)
        used_keys.add(current.content.key)
    tip = current.content
    return CrewState(
        crew=tip.crew,
        name=tip.name,
        description=tip.description,
        epoch=tip.epoch,
        members=frozenset(tip.members),
        keys=MappingProxyType({entry.content.epoch: entry.content.key for entry in chain}),
        head=current.entry_id,
        history=tuple(chain),
        known=MappingProxyType(known),
    )


def _valid_genesis(entry: StateEntry) -> bool:
    content = entry.content
    return (
        content.op == "create"
        and entry.author in content.members
        and content.crew == crew_id_for(entry.author, content.key)
        and all(_usable(member) for member in content.members)
    )


def _valid_successor(prev: StateEntry, entry: StateEntry, used_keys: set[bytes]) -> bool:
    old, new, author = prev.content, entry.content, entry.author
    if (
        new.crew != old.crew
        or new.epoch != old.epoch + 1
        or new.prev_key != old.key
        or new.key in used_keys
        or author not in old.members
    ):
        return False
    before, after = frozenset(old.members), frozenset(new.members)
    same_text = (new.name, new.description) == (old.name, old.description)
    if new.op == "add":
        return after > before and same_text and all(_usable(m) for m in after - before)
    if new.op == "remove":
        return after < before and author in after and same_text
    if new.op == "leave":
        return after == before - {author} and same_text
    if new.op == "rename":
        return after == before and not same_text
    return new.op == "rotate" and after == before and same_text


def _winner(prev: StateEntry, siblings: list[StateEntry]) -> StateEntry:
    """Pick among valid states that follow the same state (the same epoch).

    A state whose author another sibling removes loses (so a removal cannot be undone
    by a concurrent change from the member it removes); then the smallest entry id.
    """
    before = frozenset(prev.content.members)

    def removed_by_sibling(entry: StateEntry) -> bool:
        return any(
            other.content.op == "remove"
            and entry.author in before - frozenset(other.content.members)
            for other in siblings
        )

    eligible = [entry for entry in siblings if not removed_by_sibling(entry)] or siblings
    return min(eligible, key=lambda entry: entry.entry_id)


@functools.lru_cache(maxsize=4096)
def _curve_key(feed_id: bytes) -> bytes | None:
    try:
        return feed_key_to_curve25519(feed_id)
    except ValueError:
        return None


def _usable(feed_id: bytes) -> bool:
    """A member must be a valid Ed25519 key, or nobody could seal the next state to them."""
    return _curve_key(feed_id) is not None


# --- building new states -----------------------------------------------------------------


def create_crew(
    founder: bytes,
    name: str,
    *,
    time: int,
    description: str | None = None,
    members: Iterable[bytes] = (),
    key: bytes | None = None,
) -> CrewStateContent:
    """The epoch-0 crew_state of a new crew (``members`` besides the founder optional).

    Raises:
        MembershipRuleViolated: more than 64 members, or a member id that is not a
            valid Ed25519 key.
        InvalidCrewState: a bad name, description or time.
    """
    genesis_key = key if key is not None else new_key()
    everyone = _checked_members(frozenset(members) | {founder})
    return CrewStateContent(
        time=time,
        crew=crew_id_for(founder, genesis_key),
        epoch=0,
        op="create",
        name=name,
        description=description,
        members=everyone,
        keys=((0, genesis_key),),
    )


def propose(
    state: CrewState, author: bytes, change: Change, *, time: int, key: bytes | None = None
) -> CrewStateContent:
    """The crew_state that applies ``change`` by ``author`` on top of ``state``.

    Publish it with ``seal_state``. ``key`` (the new epoch key) is fresh unless given.

    Raises:
        NotAMember: ``author`` is not a member of ``state``.
        MembershipRuleViolated: the change breaks a rule (the message says which).
        InvalidCrewState: a bad name, description or time.
    """
    if author not in state.members:
        raise NotAMember("only a member of a crew can change it")
    new_key_ = key if key is not None else new_key()
    if new_key_ in state.keys.values():
        raise MembershipRuleViolated("a new epoch needs a key the crew has never used")
    members, subjects = state.members, change.subjects
    name, description = state.name, state.description
    if change.op == "add":
        if not subjects or subjects & members:
            raise MembershipRuleViolated("add needs at least one feed that is not yet a member")
        members = members | subjects
    elif change.op == "remove":
        if not subjects or not subjects <= members:
            raise MembershipRuleViolated("remove needs at least one current member")
        if author in subjects:
            raise MembershipRuleViolated("to remove yourself, leave the crew")
        members = members - subjects
    elif change.op == "leave":
        if len(members) == 1:
            raise MembershipRuleViolated("the last member cannot leave; the crew would be empty")
        members = members - {author}
    elif change.op == "rename":
        if change.name is None:
            raise MembershipRuleViolated("rename needs the new name")
        if (change.name, change.description) == (name, description):
            raise MembershipRuleViolated("rename must change the name or the description")
        name, description = change.name, change.description
    elif change.op != "rotate":
        raise MembershipRuleViolated(f"{change.op!r} cannot follow an existing state")
    return CrewStateContent(
        time=time,
        crew=state.crew,
        epoch=state.epoch + 1,
        op=change.op,
        name=name,
        description=description,
        members=_checked_members(members),
        keys=((state.epoch, state.key), (state.epoch + 1, new_key_)),
        prev=state.head,
    )


def _checked_members(members: frozenset[bytes]) -> tuple[bytes, ...]:
    if len(members) > MAX_MEMBERS:
        raise MembershipRuleViolated(f"a crew has at most {MAX_MEMBERS} members")
    for member in members:
        if type(member) is not bytes or not _usable(member):
            raise MembershipRuleViolated("a member id is not a valid feed id (Ed25519 key)")
    return tuple(sorted(members))


def seal_state(content: CrewStateContent) -> bytes:
    """The envelope payload that publishes ``content``.

    Sealed under the state's own epoch key, with a slot for every member of the new
    state: so a ``leave`` is not sealed to its author, and every other author gets a
    slot of their own (a restored identity can recover its keys from its own feed).
    """
    recipients = [_curve_key(member) for member in content.members]
    keys = [key for key in recipients if key is not None]
    if len(keys) != len(recipients):
        raise MembershipRuleViolated("a member id is not a valid feed id (Ed25519 key)")
    return seal_for_members(encode_crew_state(content), keys, key=content.key)


# --- after a race ---------------------------------------------------------------------------


def lost_changes(state: CrewState, my_entries: Sequence[StateEntry]) -> list[Change]:
    """What my losing crew_states changed that ``state`` does not reflect yet.

    Considers my states that are not on the winning chain and came after (in my feed)
    my last state that is. Drops what is already true, and what someone decided about
    the same member since (any change of that member's membership at or after the
    lost state's epoch). Returns at most: one ``remove``, one ``add``, one ``rename``
    (the latest), one ``leave``, in that order; removals first because they are the
    ones that protect the crew. Re-apply each with ``propose``, one epoch each.
    """
    on_chain = {entry.entry_id for entry in state.history}
    mine = [entry for entry in my_entries if entry.content.crew == state.crew]
    last_won = max((entry.seq for entry in mine if entry.entry_id in on_chain), default=0)
    lost = sorted(
        (e for e in mine if e.entry_id not in on_chain and e.seq > last_won and e.content.prev),
        key=lambda entry: entry.seq,
    )
    known = {**{entry.entry_id: entry for entry in mine}, **state.known}
    adds: set[bytes] = set()
    removes: set[bytes] = set()
    rename: Change | None = None
    leave = False
    for entry in lost:
        new = entry.content
        prev = known.get(new.prev or b"")
        if prev is None:
            continue
        before, after = frozenset(prev.content.members), frozenset(new.members)
        settled = _changed_since(state, new.epoch)
        adds |= {m for m in after - before if m not in state.members and m not in settled}
        removes |= {
            m
            for m in before - after
            if m in state.members and m not in settled and m != entry.author
        }
        if new.op == "leave" and entry.author in state.members:
            leave = True
        if new.op == "rename" and (new.name, new.description) != (state.name, state.description):
            rename = Change("rename", name=new.name, description=new.description)
    changes: list[Change] = []
    if removes:
        changes.append(Change("remove", frozenset(removes)))
    if adds:
        changes.append(Change("add", frozenset(adds)))
    if rename is not None:
        changes.append(rename)
    if leave:
        changes.append(Change("leave"))
    return changes


def _changed_since(state: CrewState, epoch: int) -> frozenset[bytes]:
    """Feeds whose membership the winning chain changed at ``epoch`` or later."""
    changed: set[bytes] = set()
    for older, newer in zip(state.history, state.history[1:], strict=False):
        if newer.content.epoch >= epoch:
            changed |= set(older.content.members) ^ set(newer.content.members)
    return frozenset(changed)


# --- questions about a state ---------------------------------------------------------------


def member_at(state: CrewState, feed_id: bytes, epoch: int) -> bool:
    """Whether ``feed_id`` was a member in ``epoch`` of the winning chain.

    Use it to decide whether crew content sealed under that epoch's key is shown: a
    removed member keeps the old keys and could keep posting under them.
    """
    if not 0 <= epoch <= state.epoch:
        return False
    return feed_id in state.history[epoch].content.members


def reorg_depth(old: CrewState, new: CrewState) -> int:
    """How many states of ``old``'s winning chain ``new`` no longer has.

    0 or 1 is an ordinary race. More means a branch from further back won, which
    honest members rarely cause (see the threat model): a UI should say so.
    """
    common = 0
    for before, after in zip(old.history, new.history, strict=False):
        if before.entry_id != after.entry_id:
            break
        common += 1
    return len(old.history) - common

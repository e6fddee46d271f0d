"""What the store indexes about a payload, so queries never decode every entry.

The content index has one row per entry whose payload decodes as known content:
its type, claimed time, the thread root, the parent (reply-to), the target it refers
to (the request an update changes, the entry a reaction or delete points at, the feed
a contact names), and the crew for crew content. A crew envelope is first given to
the ``Opener`` (the crew keyring); if no key opens it, the entry is *sealed*: stored
and replicated, not indexed, and retried when new keys arrive. Payloads that decode
as nothing we know (a newer version's types) are stored but not indexed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from p2pcrew import codec
from p2pcrew.feed import content as c
from p2pcrew.feed.errors import InvalidContent

CREW_STATE = "crew_state"


@dataclass(frozen=True, slots=True)
class IndexRow:
    type: str
    claimed_time: int
    root: bytes | None = None
    parent: bytes | None = None
    target: bytes | None = None
    crew: bytes | None = None
    name: str | None = None
    """For a public ``about``: the display name it sets."""
    action: str | None = None
    """For a ``contact``: follow, unfollow, block or unblock."""


@dataclass(frozen=True, slots=True)
class Indexed:
    row: IndexRow | None
    plaintext: bytes | None
    """The opened envelope's content (None for plaintext payloads and sealed ones)."""
    sealed: bool


class _NotYet(enum.Enum):
    NOT_YET = 0


NOT_YET: Final = _NotYet.NOT_YET
"""``index_row`` has not been run yet (as opposed to having run and found nothing)."""

RowHint = IndexRow | None | Literal[_NotYet.NOT_YET]
"""What the verifier may hand the store: the plaintext index row it already computed."""


class Opener(Protocol):
    """The crew keyring, as the store sees it."""

    def is_envelope(self, payload: bytes) -> bool: ...

    def open(self, payload: bytes) -> bytes | None:
        """The decrypted content bytes, or None when none of our keys opens it."""

    def learn(self, author: bytes, entry_id: bytes, seq: int, plaintext: bytes) -> bool:
        """Take in a decrypted crew_state; True if it gave us keys we lacked."""

    def opened_crew(self) -> bytes | None:
        """The crew whose epoch key opened the last envelope (None: opened by a slot)."""


def index_payload(payload: bytes, opener: Opener | None, hint: RowHint = NOT_YET) -> Indexed:
    """How to index ``payload``; ``hint`` is ``index_row(payload)`` if already known.

    The verifier's worker threads compute that row while the writer thread is busy
    in SQLite, which keeps the content decode off the writer's critical path.
    """
    row = index_row(payload) if hint is NOT_YET else hint
    if row is not None:
        if row.crew is not None:  # crew content counts only inside its crew's envelope
            return Indexed(None, None, False)
        return Indexed(row, None, False)
    from p2pcrew.crew.envelope import is_envelope  # pure; imported late to keep layers

    if not is_envelope(payload):
        return Indexed(None, None, False)
    if opener is None:
        return Indexed(None, None, True)  # kept sealed until a keyring is attached
    plaintext = opener.open(payload)
    if plaintext is None:
        return Indexed(None, None, True)
    row = index_plaintext(plaintext)
    if row is not None and row.type != CREW_STATE and row.crew != opener.opened_crew():
        return Indexed(None, None, False)  # one crew's key, claiming another crew (or none)
    return Indexed(row, plaintext, False)


def index_plaintext(plaintext: bytes) -> IndexRow | None:
    """Index opened crew content; crew_state records are indexed by crew only."""
    state = crew_state_header(plaintext)
    if state is not None:
        return state
    row = index_row(plaintext)
    return row


def crew_state_header(plaintext: bytes) -> IndexRow | None:
    try:
        value = codec.decode(plaintext)
    except codec.CodecError:
        return None
    if type(value) is not dict or value.get("type") != CREW_STATE:
        return None
    crew, time = value.get("crew"), value.get("time")
    if type(crew) is not bytes or type(time) is not int:
        return None
    return IndexRow(CREW_STATE, time, crew=crew)


def index_row(payload: bytes) -> IndexRow | None:
    """The index row for plaintext ``payload``, or None if it is not content we know."""
    try:
        item = c.decode_content(payload)
    except InvalidContent:
        return None
    return row_for(item)


def row_for(item: c.Content) -> IndexRow:
    crew = getattr(item, "crew", None)
    match item:
        case c.Post():
            return IndexRow(item.TYPE, item.time, root=item.root, parent=item.reply_to, crew=crew)
        case c.RequestUpdate():
            return IndexRow(item.TYPE, item.time, target=item.request, crew=crew)
        case c.Reaction() | c.Delete():
            return IndexRow(item.TYPE, item.time, target=item.target, crew=crew)
        case c.Contact():
            return IndexRow(item.TYPE, item.time, target=item.contact, action=item.action)
        case c.About():
            return IndexRow(item.TYPE, item.time, name=item.name)
        case _:
            return IndexRow(item.TYPE, item.time, crew=crew)

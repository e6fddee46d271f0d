"""Replication messages carried as DATA bodies on the RPC ``replicate`` stream.

Three message kinds, each a CBOR array whose first item is the kind:

- ``[0, digest]`` HELLO: BLAKE2b-256 of the notes the sender holds from the receiver
  (its persisted copy), or empty bytes when it holds none. Lets the receiver send only
  what changed since last time, or everything if either side lost its state.
- ``[1, [[feed, note], ...]]`` NOTES: the sender's vector-clock notes (see ``Note``).
- ``[2, [[header, payload or null], ...]]`` ENTRIES: entries in order within each feed.

Decoding is strict: anything else is a ``BadReplicationMessage`` and the peer is dropped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from p2pcrew import codec
from p2pcrew.errors import P2PCrewError
from p2pcrew.feed.entry import HASH_SIZE, KEY_SIZE, MAX_HEADER_SIZE, MAX_PAYLOAD_SIZE

HELLO, NOTES, ENTRIES = 0, 1, 2
MAX_NOTES_PER_MESSAGE = 1024
MAX_ENTRIES_PER_MESSAGE = 256
NOT_REPLICATING = -1


class BadReplicationMessage(P2PCrewError):
    reason = "bad-replication-message"


def note(seq: int, receive: bool) -> int:
    """A note: ``seq << 1 | receive``; -1 means "I do not replicate this feed".

    ``receive`` asks the peer to push new entries of the feed to us; we set it for
    one peer per feed only, so a feed is not streamed to us by everyone at once.
    """
    return (seq << 1) | int(receive)


def note_seq(value: int) -> int:
    return value >> 1 if value >= 0 else 0


def note_receive(value: int) -> bool:
    return value >= 0 and bool(value & 1)


@dataclass(frozen=True, slots=True)
class Hello:
    digest: bytes


@dataclass(frozen=True, slots=True)
class Notes:
    notes: dict[bytes, int]


@dataclass(frozen=True, slots=True)
class Entries:
    items: list[tuple[bytes, bytes | None]]


Message = Hello | Notes | Entries


def encode_message(message: Message) -> Any:
    """The CBOR-ready body (the RPC layer encodes it)."""
    match message:
        case Hello(digest):
            return [HELLO, digest]
        case Notes(notes):
            return [NOTES, [[feed, value] for feed, value in sorted(notes.items())]]
        case Entries(items):
            return [ENTRIES, [[header, payload] for header, payload in items]]


def decode_message(body: Any) -> Message:
    """Raises BadReplicationMessage for anything that is not exactly one of the kinds."""
    if type(body) is not list or len(body) != 2 or type(body[0]) is not int:
        raise BadReplicationMessage("replication message must be [kind, value]")
    kind, value = body
    if kind == HELLO:
        if type(value) is not bytes or len(value) not in (0, HASH_SIZE):
            raise BadReplicationMessage("hello digest must be 0 or 32 bytes")
        return Hello(value)
    if kind == NOTES:
        return Notes(_notes(value))
    if kind == ENTRIES:
        return Entries(_entries(value))
    raise BadReplicationMessage(f"unknown replication message kind {kind}")


def _notes(value: Any) -> dict[bytes, int]:
    if type(value) is not list or len(value) > MAX_NOTES_PER_MESSAGE:
        raise BadReplicationMessage(f"notes must be a list of at most {MAX_NOTES_PER_MESSAGE}")
    out: dict[bytes, int] = {}
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            raise BadReplicationMessage("a note must be [feed, value]")
        feed, n = pair
        if type(feed) is not bytes or len(feed) != KEY_SIZE or type(n) is not int:
            raise BadReplicationMessage("a note must be [32-byte feed id, integer]")
        if n < NOT_REPLICATING or n >= 2**63:
            raise BadReplicationMessage("note value out of range")
        out[feed] = n
    return out


def _entries(value: Any) -> list[tuple[bytes, bytes | None]]:
    if type(value) is not list or not 0 < len(value) <= MAX_ENTRIES_PER_MESSAGE:
        raise BadReplicationMessage(f"entries must be 1..{MAX_ENTRIES_PER_MESSAGE} items")
    out: list[tuple[bytes, bytes | None]] = []
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            raise BadReplicationMessage("an entry must be [header, payload]")
        header, payload = pair
        if type(header) is not bytes or len(header) > MAX_HEADER_SIZE:
            raise BadReplicationMessage("entry header must be bytes of at most 256")
        if payload is not None and (type(payload) is not bytes or len(payload) > MAX_PAYLOAD_SIZE):
            raise BadReplicationMessage("entry payload must be null or bytes within the limit")
        out.append((header, payload))
    return out


def notes_digest(notes: dict[bytes, int]) -> bytes:
    """Order-independent digest both sides compute over the same notes."""
    if not notes:
        return b""
    encoded = codec.encode([[feed, value] for feed, value in sorted(notes.items())])
    return hashlib.blake2b(encoded, digest_size=HASH_SIZE).digest()

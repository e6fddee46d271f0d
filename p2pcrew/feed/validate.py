"""Validation rules as pure functions: the only place that decides validity.

Each function checks one group of rules and raises the specific ``EntryRejected``
subclass for the rule that failed. They need nothing but their arguments: the
entry, its payload, and (for chain rules) the previous entry and the lipmaa target.
The store calls them inside its ingest transaction; replication and bundle import
reach them only through the store, so there is exactly one path to "accepted".
"""

from __future__ import annotations

from typing import NamedTuple

from p2pcrew.feed.entry import MAX_PAYLOAD_SIZE, Entry, blake2b256, lipmaa
from p2pcrew.feed.errors import (
    BacklinkMismatch,
    EntryTooLarge,
    ForkDetected,
    LipmaaMismatch,
    PayloadHashMismatch,
    PayloadSizeMismatch,
    SequenceGap,
    SequenceRepeat,
    WrongAuthor,
)
from p2pcrew.feed.ids import feed_id_to_text


class Tip(NamedTuple):
    """The latest entry of a feed: all that chain validation needs of the past."""

    seq: int
    id: bytes


def check_author(entry: Entry, expected_author: bytes) -> None:
    """A peer streaming feed X may only send entries authored by X."""
    if entry.author != expected_author:
        raise WrongAuthor(
            f"entry is authored by {feed_id_to_text(entry.author)}, expected "
            f"{feed_id_to_text(expected_author)}",
            where=entry.where(),
        )


def check_payload(entry: Entry, payload: bytes) -> None:
    """The payload must be exactly what the signed header promised."""
    if len(payload) > MAX_PAYLOAD_SIZE:
        raise EntryTooLarge(
            f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_SIZE}", where=entry.where()
        )
    if len(payload) != entry.payload_size:
        raise PayloadSizeMismatch(
            f"payload has {len(payload)} bytes, header says {entry.payload_size}",
            where=entry.where(),
        )
    if blake2b256(payload) != entry.payload_hash:
        raise PayloadHashMismatch("payload does not match the signed hash", where=entry.where())


def expected_lipmaa_seq(entry: Entry) -> int:
    """The sequence number whose id ``entry.lipmaa_link`` must equal (0: none)."""
    return lipmaa(entry.seq) if entry.seq > 1 else 0


def check_successor(entry: Entry, tip: Tip | None, lipmaa_target: bytes | None) -> None:
    """``entry`` must extend the chain whose latest entry is ``tip`` (None: empty feed).

    ``lipmaa_target`` is the id of the author's entry at ``expected_lipmaa_seq``.
    Raises SequenceGap, SequenceRepeat, BacklinkMismatch or LipmaaMismatch. A repeat
    may be a fork: callers that hold the stored entry at that sequence use
    ``check_same_entry`` to tell the two apart.
    """
    expected = 1 if tip is None else tip.seq + 1
    if entry.seq > expected:
        raise SequenceGap(
            f"sequence {entry.seq} arrived but the next expected is {expected}",
            where=entry.where(),
        )
    if entry.seq < expected:
        raise SequenceRepeat(f"sequence {entry.seq} is already stored", where=entry.where())
    if tip is not None and entry.backlink != tip.id:
        raise BacklinkMismatch(f"backlink does not point at entry {tip.seq}", where=entry.where())
    if entry.seq > 1 and entry.lipmaa_link != lipmaa_target:
        raise LipmaaMismatch(
            f"lipmaa link does not point at entry {expected_lipmaa_seq(entry)}",
            where=entry.where(),
        )


def check_same_entry(entry: Entry, stored: Entry) -> None:
    """Tell a harmless repeat from a fork at an already stored sequence number.

    Both entries must already have verified signatures: a forged entry is not
    proof of a fork, it is just a bad signature.
    """
    if entry.id == stored.id:
        raise SequenceRepeat("entry is already stored", where=entry.where())
    raise ForkDetected(
        "the author signed two different entries at this sequence number; the feed "
        "is marked forked and nothing more from it will be accepted",
        where=entry.where(),
    )

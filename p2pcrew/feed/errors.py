"""Why an entry was rejected: one exception type per validation rule.

Every rule has its own class under ``EntryRejected`` so that replication can count
rejections by reason and tests can assert exactly which rule fired. ``rule`` is a
stable machine-readable name (used in metrics and RPC error replies); the message is
for a person and names the entry.
"""

from __future__ import annotations

from typing import ClassVar

from p2pcrew.errors import P2PCrewError


class EntryRejected(P2PCrewError, ValueError):
    """An entry (or payload) that must not be stored."""

    rule: ClassVar[str] = "rejected"

    def __init__(self, message: str, *, where: str = "") -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self) -> tuple[object, ...]:
        # Crosses from verify worker processes; the default would lose ``where``.
        return (_rebuild, (type(self), self.args, self.where))


def _rebuild(cls: type[EntryRejected], args: tuple[object, ...], where: str) -> EntryRejected:
    exc = cls.__new__(cls)
    exc.args = args
    exc.where = where
    return exc


class MalformedEntry(EntryRejected):
    rule = "malformed"


class NonCanonicalEncoding(EntryRejected):
    rule = "non-canonical"


class EntryTooLarge(EntryRejected):
    rule = "too-large"


class UnknownFormatVersion(EntryRejected):
    rule = "unknown-version"


class BadSignature(EntryRejected):
    rule = "bad-signature"


class WrongAuthor(EntryRejected):
    rule = "wrong-author"


class SequenceGap(EntryRejected):
    rule = "sequence-gap"


class SequenceRepeat(EntryRejected):
    """An entry we already hold (same id): harmless, but not stored twice."""

    rule = "sequence-repeat"


class BacklinkMismatch(EntryRejected):
    rule = "backlink-mismatch"


class LipmaaMismatch(EntryRejected):
    rule = "lipmaa-mismatch"


class PayloadHashMismatch(EntryRejected):
    rule = "payload-hash-mismatch"


class PayloadSizeMismatch(EntryRejected):
    rule = "payload-size-mismatch"


class PayloadDeleted(EntryRejected):
    """The author (or the store's owner) deleted this payload; it is never re-accepted."""

    rule = "payload-deleted"


class InvalidContent(EntryRejected):
    """The payload decodes but does not match the schema of its content type."""

    rule = "invalid-content"


class ForkDetected(EntryRejected):
    """A second, validly signed entry at a sequence number the feed already has.

    The feed is marked forked, both headers are kept as proof, and nothing more from
    that feed is accepted.
    """

    rule = "fork"


class FeedForked(EntryRejected):
    """The feed was already marked forked; nothing more from it is accepted."""

    rule = "feed-forked"


ALL_RULES: tuple[type[EntryRejected], ...] = (
    MalformedEntry,
    NonCanonicalEncoding,
    EntryTooLarge,
    UnknownFormatVersion,
    BadSignature,
    WrongAuthor,
    SequenceGap,
    SequenceRepeat,
    BacklinkMismatch,
    LipmaaMismatch,
    PayloadHashMismatch,
    PayloadSizeMismatch,
    PayloadDeleted,
    InvalidContent,
    ForkDetected,
    FeedForked,
)

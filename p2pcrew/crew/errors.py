"""Errors raised by the crew layer: one class per thing a caller may need to tell apart.

Each class carries a stable, machine-readable ``reason`` (for logs, metrics and RPC
error replies) and a message for a person. Everything derives from ``CrewError`` so a
caller can catch the whole family; the envelope functions promise to raise nothing
else on hostile bytes.
"""

from __future__ import annotations

from typing import ClassVar

from p2pcrew.errors import P2PCrewError

__all__ = [
    "BadRecipientKey",
    "CrewError",
    "EnvelopeMalformed",
    "EnvelopeTooLarge",
    "InvalidCrewState",
    "MembershipRuleViolated",
    "NotAMember",
    "TooManyRecipients",
]


class CrewError(P2PCrewError):
    """Root of every crew error."""

    reason: ClassVar[str] = "crew-error"


class EnvelopeMalformed(CrewError, ValueError):
    """Bytes that claim to be a crew envelope but are structurally broken.

    Also raised when an envelope authenticates under one of our keys but its padding
    is wrong: only a key holder could have made it, so it is a broken (or hostile)
    member's envelope, not someone else's crew.
    """

    reason = "envelope-malformed"


class EnvelopeTooLarge(CrewError, ValueError):
    """Content that cannot fit in one entry payload once sealed and padded."""

    reason = "envelope-too-large"


class TooManyRecipients(EnvelopeTooLarge):
    """More recipients than an envelope has slots for (64)."""

    reason = "too-many-recipients"


class BadRecipientKey(CrewError, ValueError):
    """A recipient key that is not a usable Curve25519 public key (wrong size or low order)."""

    reason = "bad-recipient-key"


class InvalidCrewState(CrewError, ValueError):
    """A decrypted ``crew_state`` map that breaks its schema; the message names the field."""

    reason = "invalid-crew-state"


class NotAMember(CrewError):
    """The local identity tried to change a crew it is not a member of."""

    reason = "not-a-member"


class MembershipRuleViolated(CrewError, ValueError):
    """A proposed change that the membership rules forbid (the message says which rule)."""

    reason = "membership-rule"

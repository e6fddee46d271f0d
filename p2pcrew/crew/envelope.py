"""Crew envelopes: what a crew entry's payload is instead of a plaintext content map.

Wire form (``docs/crews.md`` is normative): the canonical CBOR encoding of one byte
string whose contents are::

    version (1 byte = 1) || nslots (1 byte) || slots (nslots x 80) || nonce (24) || ciphertext

``ciphertext`` is XSalsa20-Poly1305 ``secretbox(K, nonce, padded)``. Ordinary crew
content has no slots and ``K`` is the crew's current epoch key. Key distribution
(crew_state) uses slots: each real slot is ``crypto_box_seal(K, recipient)``, padded
with indistinguishable dummies up to a power-of-two count and shuffled, so an outsider
(the pub included) learns neither the crew nor the recipients, only a size bucket.

Why these choices:

* The plaintext is padded (ISO/IEC 7816-4) to one of a few buckets, so the payload
  size says little about the content; the ciphertext length depends only on the bucket.
* Every envelope body is 298..16381 bytes, so its CBOR head is always ``0x59`` plus a
  two-byte length. ``is_envelope`` and the parser read that head directly, which is
  exactly the canonical strict decode for this one shape, without a cbor2 round trip
  on the hot path (every entry of every crew is tried against every key we hold).
* Opening tries the epoch keys first (one Poly1305 check each) and only then the
  slots (one X25519 each), because almost every envelope a node sees is either
  ordinary content of one of its crews or someone else's crew.
* libsodium compares MACs in constant time; nothing here compares secrets itself.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import nacl.bindings as sodium
import nacl.exceptions

from p2pcrew import codec
from p2pcrew.crew.errors import (
    BadRecipientKey,
    EnvelopeMalformed,
    EnvelopeTooLarge,
    TooManyRecipients,
)
from p2pcrew.feed.entry import MAX_PAYLOAD_SIZE

__all__ = [
    "ENVELOPE_VERSION",
    "KEY_SIZE",
    "MAX_RECIPIENTS",
    "PAD_BUCKETS",
    "SLOT_BUCKETS",
    "SLOT_SIZE",
    "OpenedEnvelope",
    "is_envelope",
    "max_content_size",
    "new_key",
    "open_envelope",
    "pad_buckets",
    "seal_for_crew",
    "seal_for_members",
    "slot_count",
]

ENVELOPE_VERSION: Final = 1
KEY_SIZE: Final = 32
NONCE_SIZE: Final = 24
MAC_SIZE: Final = 16
SLOT_SIZE: Final = KEY_SIZE + 48
"""A sealed box of a 32-byte key: ephemeral public key (32) + MAC (16) + key (32)."""
MAX_RECIPIENTS: Final = 64
SLOT_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64)
"""Slot counts an envelope with recipients may have; the real count is padded up."""
PAD_BUCKETS: Final = (256, 512, 1024, 2048, 4096, 8192)
"""Padded plaintext sizes; above these, one last bucket: whatever still fits."""

_HEAD: Final = b"\x59"  # CBOR byte string with a two-byte length
_HEAD_SIZE: Final = 3
_PREFIX_SIZE: Final = _HEAD_SIZE + 2  # head, version, nslots
_OVERHEAD: Final = _PREFIX_SIZE + NONCE_SIZE + MAC_SIZE
_VALID_SLOT_COUNTS: Final = frozenset((0, *SLOT_BUCKETS))
_CRYPTO_ERRORS: Final = (nacl.exceptions.CryptoError, RuntimeError, ValueError, TypeError)
_RANDOM: Final = secrets.SystemRandom()


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """A successfully opened envelope."""

    content: bytes
    """The plaintext content bytes (padding removed); decode with the content module."""
    key_used: bytes
    """The 32-byte key that opened it: an epoch key, or the key found in our slot."""
    via_slot: bool
    """True when a slot addressed to us provided the key (a key-distribution envelope)."""

    def __repr__(self) -> str:  # never print key material
        return f"OpenedEnvelope(content=<{len(self.content)} bytes>, via_slot={self.via_slot})"


def new_key() -> bytes:
    """A fresh random 32-byte key (epoch key or message key)."""
    return os.urandom(KEY_SIZE)


def slot_count(recipients: int) -> int:
    """The padded slot count for ``recipients`` real recipients (0 for none).

    Raises:
        TooManyRecipients: more than ``MAX_RECIPIENTS``.
    """
    if recipients <= 0:
        return 0
    for bucket in SLOT_BUCKETS:
        if recipients <= bucket:
            return bucket
    raise TooManyRecipients(
        f"{recipients} recipients is more than the {MAX_RECIPIENTS} an envelope can hold"
    )


def pad_buckets(nslots: int = 0) -> tuple[int, ...]:
    """The padded plaintext sizes allowed for an envelope with ``nslots`` slots."""
    return (*PAD_BUCKETS, MAX_PAYLOAD_SIZE - _OVERHEAD - nslots * SLOT_SIZE)


def max_content_size(nslots: int = 0) -> int:
    """Largest content that fits with ``nslots`` slots (padding needs at least one byte).

    16,338 bytes for ordinary crew content; 11,218 with 64 slots.
    """
    return pad_buckets(nslots)[-1] - 1


def seal_for_crew(content: bytes, epoch_key: bytes) -> bytes:
    """Seal ordinary crew content under the crew's current epoch key (no slots).

    Raises:
        EnvelopeTooLarge: ``content`` does not fit (more than ``max_content_size(0)``).
        ValueError: ``epoch_key`` is not 32 bytes (a local bug).
    """
    _check_key(epoch_key, "epoch key")
    return _seal(bytes(content), epoch_key, [])


def seal_for_members(
    content: bytes, recipients: Sequence[bytes], *, key: bytes | None = None
) -> bytes:
    """Seal ``content`` under ``key`` (fresh if None) and give each recipient a slot.

    ``recipients`` are Curve25519 public keys (``feed_key_to_curve25519`` of a feed id).
    Crew states pass their new epoch key as ``key``, so that anyone who later holds
    that epoch key can reopen the state without a slot (see ``docs/crews.md``).

    Raises:
        TooManyRecipients: more than 64 recipients.
        EnvelopeTooLarge: ``content`` does not fit next to the slots.
        BadRecipientKey: a recipient key is not 32 bytes or is a low-order point.
        ValueError: no recipients, a duplicate recipient, or a bad ``key``.
    """
    nslots = slot_count(len(recipients))
    if nslots == 0:
        raise ValueError("an envelope with slots needs at least one recipient")
    if len(set(recipients)) != len(recipients):
        raise ValueError("duplicate recipient")
    if key is None:
        key = new_key()
    _check_key(key, "message key")
    content = bytes(content)
    _check_fits(content, nslots)  # before the public-key work
    slots = [_sealed_slot(key, pk) for pk in recipients]
    slots.extend(_dummy_slot() for _ in range(nslots - len(recipients)))
    _RANDOM.shuffle(slots)
    return _seal(content, key, slots)


def is_envelope(payload: bytes) -> bool:
    """Whether ``payload`` looks like a version-1 crew envelope (a cheap prefix check).

    A plaintext content map starts with a CBOR map head, never ``0x59``, so the two
    kinds of payload cannot be confused. True does not mean well-formed.
    """
    return (
        len(payload) > _PREFIX_SIZE
        and payload[:1] == _HEAD
        and int.from_bytes(payload[1:3], "big") == len(payload) - _HEAD_SIZE
        and payload[3] == ENVELOPE_VERSION
    )


def open_envelope(
    payload: bytes,
    epoch_keys: Sequence[bytes],
    my_curve_secret: bytes | None,
    my_curve_public: bytes | None,
) -> OpenedEnvelope | None:
    """Open ``payload`` with any key we hold, or return None if none opens it.

    Tries every epoch key, then (if a key pair is given) every slot with our
    Curve25519 key, stopping at the first success. None is the normal answer for
    another crew's entry.

    Raises:
        EnvelopeMalformed: not an envelope, a structural error (slot count, sizes,
            version), a slot for us whose key does not open the ciphertext, or
            authenticated plaintext with broken padding. Nothing else on any bytes.
        ValueError: a key argument of the wrong size, or only half a key pair (a
            local bug, checked before the payload is looked at).
    """
    for key in epoch_keys:
        _check_key(key, "epoch key")
    if (my_curve_secret is None) != (my_curve_public is None):
        raise ValueError("give both halves of the Curve25519 key pair, or neither")
    if my_curve_secret is not None and my_curve_public is not None:
        _check_key(my_curve_secret, "Curve25519 secret key")
        _check_key(my_curve_public, "Curve25519 public key")
    data = bytes(payload)
    nslots, nonce, ciphertext = _parse(data)
    for key in epoch_keys:
        padded = _secretbox_open(ciphertext, nonce, key)
        if padded is not None:
            return OpenedEnvelope(_unpad(padded), key, via_slot=False)
    if my_curve_secret is None or my_curve_public is None or nslots == 0:
        return None
    slot_opened = False
    for index in range(nslots):
        start = _PREFIX_SIZE + index * SLOT_SIZE
        slot_key = _slot_open(data[start : start + SLOT_SIZE], my_curve_public, my_curve_secret)
        if slot_key is None:
            continue
        padded = _secretbox_open(ciphertext, nonce, slot_key)
        if padded is not None:
            return OpenedEnvelope(_unpad(padded), slot_key, via_slot=True)
        slot_opened = True
    if slot_opened:
        raise EnvelopeMalformed(
            "crew envelope: a slot addressed to us holds a key that does not open it"
        )
    return None


# --- internals ---------------------------------------------------------------------------


def _check_key(key: object, what: str) -> None:
    if type(key) is not bytes or len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes")


def _check_fits(content: bytes, nslots: int) -> None:
    limit = max_content_size(nslots)
    if len(content) > limit:
        where = f" next to {nslots} recipient slots" if nslots else ""
        raise EnvelopeTooLarge(
            f"content of {len(content)} bytes does not fit in a crew envelope{where} "
            f"(at most {limit} bytes)"
        )


def _seal(content: bytes, key: bytes, slots: list[bytes], nonce: bytes | None = None) -> bytes:
    """The envelope; ``nonce`` is only ever given by tests (documented examples)."""
    nslots = len(slots)
    _check_fits(content, nslots)
    bucket = next(size for size in pad_buckets(nslots) if len(content) < size)
    padded = sodium.sodium_pad(content, bucket)
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    ciphertext = sodium.crypto_secretbox_easy(padded, nonce, key)
    body = bytes((ENVELOPE_VERSION, nslots)) + b"".join(slots) + nonce + ciphertext
    return codec.encode(body)


def _sealed_slot(key: bytes, recipient: bytes) -> bytes:
    if type(recipient) is not bytes or len(recipient) != KEY_SIZE:
        raise BadRecipientKey("a recipient key must be a 32-byte Curve25519 public key")
    try:
        return sodium.crypto_box_seal(key, recipient)
    except _CRYPTO_ERRORS as exc:
        raise BadRecipientKey(
            "a recipient key is not a usable Curve25519 public key (low-order point)"
        ) from exc


def _dummy_slot() -> bytes:
    """80 bytes that look like a sealed box: a real public key, then random bytes.

    Plain random bytes would not do: a real slot starts with an X25519 public key,
    which is a point on the curve with its top bit clear, and half of all random
    32-byte strings are not.
    """
    ephemeral = sodium.crypto_scalarmult_base(os.urandom(KEY_SIZE))
    return ephemeral + os.urandom(SLOT_SIZE - KEY_SIZE)


def _parse(data: bytes) -> tuple[int, bytes, bytes]:
    """Check the structure; return (nslots, nonce, ciphertext)."""
    if not is_envelope(data):
        raise EnvelopeMalformed("not a version-1 crew envelope")
    nslots = data[4]
    if nslots not in _VALID_SLOT_COUNTS:
        raise EnvelopeMalformed(f"crew envelope: {nslots} slots is not an allowed count")
    nonce_at = _PREFIX_SIZE + nslots * SLOT_SIZE
    ciphertext_at = nonce_at + NONCE_SIZE
    padded_size = len(data) - ciphertext_at - MAC_SIZE
    if padded_size not in pad_buckets(nslots):
        raise EnvelopeMalformed(
            f"crew envelope: {padded_size} bytes of padded content is not an allowed size "
            f"for {nslots} slots"
        )
    return nslots, data[nonce_at:ciphertext_at], data[ciphertext_at:]


def _secretbox_open(ciphertext: bytes, nonce: bytes, key: bytes) -> bytes | None:
    try:
        return sodium.crypto_secretbox_open_easy(ciphertext, nonce, key)
    except _CRYPTO_ERRORS:
        return None


def _slot_open(slot: bytes, public: bytes, secret: bytes) -> bytes | None:
    try:
        key = sodium.crypto_box_seal_open(slot, public, secret)
    except _CRYPTO_ERRORS:  # includes low-order ephemeral keys (RuntimeError in PyNaCl)
        return None
    return key if len(key) == KEY_SIZE else None


def _unpad(padded: bytes) -> bytes:
    try:
        return sodium.sodium_unpad(padded, len(padded))
    except _CRYPTO_ERRORS as exc:
        raise EnvelopeMalformed(
            "crew envelope: authenticated content has broken padding (a member's bug)"
        ) from exc
